import FlotillaController
import Foundation

/// Live progress of a job on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise.
struct ProgressDisplay: Sendable {
    let board: StatusBoard
    let totalSamples: Int
    let isTerminal = isatty(STDERR_FILENO) == 1

    /// Draws until the calling task is cancelled.
    func run() async {
        let interval: Duration = isTerminal ? .milliseconds(250) : .seconds(5)
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { break }
            draw(final: false)
        }
    }

    func draw(final: Bool) {
        let status = board.status
        let done = min(status.samplesDone, totalSamples)
        let fraction = totalSamples == 0 ? 1 : Double(done) / Double(totalSamples)
        let alive = status.workers.filter { !$0.lost }.count
        let retries = status.reEnqueues.values.reduce(0, +)
        let dead = status.shards["dead"] ?? 0
        let eta = status.etaSeconds.map { String(format: "%.0fs", $0) } ?? "-"
        let text = "\(done)/\(totalSamples) samples  \(String(format: "%.0f", status.samplesPerSecond))/s  ETA \(eta)  workers \(alive)  retries \(retries)  dead \(dead)"
        if isTerminal {
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(bar) \(String(format: "%3.0f", fraction * 100))%  \(text)\(final ? "\n" : "")".utf8))
        } else {
            FileHandle.standardError.write(Data("progress: \(text)\n".utf8))
        }
    }
}
