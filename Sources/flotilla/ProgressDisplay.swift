import FlotillaController
import FlotillaCore
import Foundation

/// Live progress of a job on stderr: a redrawn bar on a terminal, a plain line every few seconds
/// otherwise. Each line has the elapsed time, and the rate and ETA of the controller's `/status`
/// (one source of truth: the live workers' own measures); while no worker is alive it shows the
/// last worker error, so a fleet that cannot start says why. The final line's rate is the average.
final class ProgressDisplay: Sendable {
    let board: StatusBoard
    let totalSamples: Int?
    let isTerminal = isatty(STDERR_FILENO) == 1
    private let started = ContinuousClock.now

    init(board: StatusBoard, totalSamples: Int?) {
        self.board = board
        self.totalSamples = totalSamples
    }

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
        let total = totalSamples ?? status.totalSamples
        let done = total.map { min(status.samplesDone, $0) } ?? status.samplesDone
        let elapsed = ContinuousClock.now - started
        let rate = final ? Double(done) / max(0.001, elapsed.seconds) : status.samplesPerSecond
        let alive = status.workers.filter { !$0.lost }.count
        let balanced = (status.reEnqueues["stolen"] ?? 0) + (status.reEnqueues["speculative"] ?? 0)
        let reEnqueued = status.reEnqueues.values.reduce(0, +) - balanced
        let dead = status.shards["dead"] ?? 0
        let eta = status.etaSeconds.map { String(format: "%.0fs", $0) } ?? "-"
        var text = "\(done)/\(total.map(String.init) ?? "?") samples  \(Self.format(elapsed))  \(String(format: "%.0f", rate))/s"
        if !final { text += "  ETA \(eta)" }
        // "workers 2→4": the autoscaler (or a scale command) wants more or fewer than run now.
        let wanted = status.desiredWorkers != alive && status.desiredWorkers > 0 && !final ? "→\(status.desiredWorkers)" : ""
        text += "  workers \(alive)\(wanted)  re-enqueued \(reEnqueued)"
        if balanced > 0 { text += " (+\(balanced) balancing)" }
        text += "  dead \(dead)"
        if !final, let held = status.heldAcks { text += "\n  \(held)" }
        if alive == 0, !final, let error = status.lastWorkerError {
            text += "\n  last worker error (\(Self.format(.milliseconds(status.lastWorkerErrorAgoMs ?? 0))) ago): \(error)"
        }
        if isTerminal {
            let fraction = total.map { $0 == 0 ? 1 : Double(done) / Double($0) } ?? 0
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            // The error line is printed once under the bar, then the bar is redrawn in place.
            let lines = text.split(separator: "\n", maxSplits: 1)
            var output = "\r\u{1B}[2K\(bar) \(String(format: "%3.0f", fraction * 100))%  \(lines[0])"
            if lines.count > 1 { output += "\n\(lines[1])\n" }
            FileHandle.standardError.write(Data((output + (final ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data("progress: \(text)\n".utf8))
        }
    }

    /// "9.8s", "2m05s", "1h02m".
    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds)
        if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, whole / 60 % 60)
    }
}

