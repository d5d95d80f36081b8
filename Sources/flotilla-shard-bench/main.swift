// Times FileSharder (and optionally ShardReader) on one JSON-lines file; run by tools/bench/shard-speed.
import FlotillaCore
import FlotillaSources
import Foundation
import Logging

@main
struct ShardBench {
    static func main() async {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: flotilla-shard-bench FILE [SAMPLES_PER_SHARD] [READ_SHARDS]\n".utf8))
            exit(2)
        }
        let samplesPerShard = arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000
        let readShards = arguments.count > 3 ? Int(arguments[3]) ?? 0 : 0
        do throws(FlotillaError) {
            try await run(path: arguments[1], samplesPerShard: samplesPerShard, readShards: readShards)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            exit(error.exitCode)
        }
    }

    static func run(path: String, samplesPerShard: Int, readShards: Int) async throws(FlotillaError) {
        let start = ContinuousClock.now
        let plan = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: samplesPerShard, maxSampleBytes: 1 << 20)
        let elapsed = seconds(since: start)
        print("shard: \(fixed(Double(plan.bytes) / 1e6 / elapsed, 1)) MB/s, shards \(plan.ranges.count), samples \(plan.samples), bytes \(plan.bytes), seconds \(fixed(elapsed, 3))")
        guard readShards > 0 else { return }
        let reader = ShardReader(logger: Logger(label: "flotilla.bench"))
        let picked = plan.ranges.prefix(readShards)
        let readStart = ContinuousClock.now
        var read = 0
        var failed = 0
        var bytes: Int64 = 0
        for shard in picked {
            let samples = try await reader.read(.file(shard))
            read += samples.count
            failed += samples.count { if case .failure = $0.input { true } else { false } }
            bytes += shard.range.length
        }
        let readElapsed = seconds(since: readStart)
        print("read: \(fixed(Double(bytes) / 1e6 / readElapsed, 1)) MB/s, \(Int(Double(read) / readElapsed)) samples/s, shards \(picked.count), samples \(read), failed \(failed), seconds \(fixed(readElapsed, 3))")
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}
