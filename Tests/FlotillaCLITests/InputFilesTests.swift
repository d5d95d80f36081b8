import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// Input files as people export them, through the real executable (`flotilla run`, embedded broker).
@Suite("Input files", .serialized, .timeLimit(.minutes(5)))
struct InputFilesTests {
    @Test("flotilla run on a CSV with a byte order mark, no id column and a quoted newline: every sample done, ids <file>:<line>")
    func bomCSVWithoutIDs() throws {
        let folder = try JobFolder("inputs").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // As spreadsheet exports write it: BOM, CRLF, one field spanning two lines (row 3).
        var text = "text,n\r\n"
        for index in 0..<12 { text += index == 1 ? "\"two\r\nlines\",\(index)\r\n" : "row \(index),\(index)\r\n" }
        try Data([0xEF, 0xBB, 0xBF] + Array(text.utf8)).write(to: URL(fileURLWithPath: "\(folder)/data.csv"))
        let job = JobFolder.jobID("inputs")
        try """
            job: \(job)
            inputs: [{file: data.csv}]
            shard: { samples: 5 }
            stages: [{name: echo, builtin: identity}]
            outputs: { directory: out }
            workers: 1
            """.write(toFile: "\(folder)/job.yaml", atomically: true, encoding: .utf8)
        let run = try CommandRunner.run([CommandRunner.flotillaExecutable, "run", "\(folder)/job.yaml", "--json", "--log-dir", "\(folder)/logs"],
                                        directory: folder)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let stdout = run.stdout.split(separator: "\n")
        #expect(stdout.count == 1, "stdout: \(run.stdout)")
        let summary = try JSONDecoder().decode(JobStatusSummary.self, from: Data((stdout.last ?? "").utf8))
        #expect(summary.shards == 3 && summary.done == 3 && summary.dead == 0)
        #expect(summary.samples == 12)
        #expect(summary.failedSamples == 0)
        // Rows start on lines 2, 3, 5, 6, …: row 3's field spans lines 3 and 4.
        var ids: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(folder)/out").sorted() where name.hasSuffix(".jsonl") {
            let lines = try String(contentsOfFile: "\(folder)/out/\(name)", encoding: .utf8).split(separator: "\n")
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                ids += (object?["id"] as? String).map { [$0] } ?? []
            }
        }
        let expected = ([2, 3] + (5...14).map { $0 }).map { "\(folder)/data.csv:\($0)" }
        #expect(Set(ids) == Set(expected), "ids: \(ids)")
    }
}
