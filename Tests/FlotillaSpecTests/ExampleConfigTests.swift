import FlotillaCore
@testable import FlotillaSpec
import Foundation
import Testing

/// The repository's config/examples folder, found from this source file (symlinks resolved, so a
/// private dev package that links the test folder still finds it).
let examplesFolder: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("config/examples")

@Suite("Example configs")
struct ExampleConfigTests {
    private func load(_ name: String) throws -> JobConfig {
        try JobSpecLoader.load(path: examplesFolder.appendingPathComponent(name).path, builtins: ["identity", "hash-embed"])
    }

    private var repositoryRoot: String {
        SpecPaths.normalize(examplesFolder.deletingLastPathComponent().deletingLastPathComponent().path)
    }

    @Test("every example in config/examples loads")
    func allExamplesLoad() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: examplesFolder.path).filter { $0.hasSuffix(".yaml") }
        #expect(Set(names).isSuperset(of: ["quickstart.yaml", "multi-model.yaml", "http-source.yaml"]))
        for name in names {
            let config = try load(name)
            #expect(!config.stages.isEmpty, "\(name)")
        }
    }

    @Test("quickstart reads the digits file and runs the Python predictor, paths from the repository root")
    func quickstart() throws {
        let config = try load("quickstart.yaml")
        let root = repositoryRoot
        #expect(config.job == "digits-quickstart")
        #expect(config.inputs == [.lines(LinesInput(.file(path: root + "/.tools/data/digits.jsonl"), format: .jsonl, idField: .standard))])
        #expect(config.stages.map(\.name) == ["classify"])
        #expect(config.stages[0].predictor == .command([
            root + "/.tools/venv/bin/python", root + "/python/examples/digits_predictor.py",
            "--model", root + "/.tools/models/digits.npz",
        ]))
        #expect(config.stages[0].timeout == .seconds(30))
        #expect(config.workers == FleetConfig(min: 1, max: 2))
        #expect(config.shardPartitions == 4)
    }

    @Test("multi-model chains a builtin and a Python stage")
    func multiModel() throws {
        let config = try load("multi-model.yaml")
        #expect(config.stages.map(\.name) == ["prepare", "classify"])
        #expect(config.stages[0].predictor == .builtin("identity"))
        guard case .command(let argv) = config.stages[1].predictor else {
            Issue.record("classify must be a command stage")
            return
        }
        #expect(argv.first == repositoryRoot + "/.tools/venv/bin/python")
        #expect(config.stages[1].env == ["OMP_NUM_THREADS": "1"])
        #expect(config.stages[1].startTimeout == .seconds(120))
        #expect(config.outputs.directory == repositoryRoot + "/results/multi-model")
    }

    @Test("http-source reads a URL")
    func httpSource() throws {
        let config = try load("http-source.yaml")
        #expect(config.inputs == [.lines(LinesInput(.url("http://127.0.0.1:8080/digits.jsonl"), format: .jsonl, idField: "id"))])
        #expect(config.kafka.properties == ["client.id": "flotilla-http-example"])
        #expect(config.shardPartitions == 8)
    }
}
