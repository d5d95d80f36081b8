import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Testing

/// Accelerators handed to predictor processes: a given device list (no accelerator is needed to
/// test the assignment), real python3 processes reading their CUDA_VISIBLE_DEVICES.
@Suite("Devices for predictor processes", .timeLimit(.minutes(2)))
struct DeviceAllocatorTests {
    @Test("slices are disjoint, in list order, given back on release; bad lists and too-small ones are refused clearly")
    func allocator() throws {
        let devices = try DeviceAllocator(devices: ["0", "1", "2"])
        #expect(devices.take(2, for: "a#0") == ["0", "1"])
        #expect(devices.take(2, for: "a#1") == nil, "only one left: nothing is taken")
        #expect(devices.take(1, for: "b#0") == ["2"])
        devices.give(["0", "1"])
        #expect(devices.take(1, for: "b#1") == ["0"])
        #expect(devices.holders == ["0": "b#1", "2": "b#0"])
        #expect(throws: FlotillaError.self) { try DeviceAllocator(devices: ["0", "0"]) }
        #expect(throws: FlotillaError.self) { try DeviceAllocator(devices: [""]) }
        let problem = try DeviceAllocator(devices: ["0", "1", "2"]).problem(with: [("embed", 2, 1), ("rank", 1, 2), ("cpu", 0, 4)])
        #expect(problem == "the stages need 4 device(s) for their smallest pools (embed 1 × 2, rank 2 × 1); this worker has 3 (0,1,2)")
        #expect(try DeviceAllocator(devices: []).problem(with: [("embed", 1, 1)])?.contains("has none") == true)
        #expect(try DeviceAllocator(devices: ["0"]).problem(with: [("cpu", 0, 8)]) == nil)
    }

    /// Each answer: the process id and the devices it was given.
    static let reporter = "import os; from flotilla_predictor import serve; serve(lambda xs: [{'pid': os.getpid(), 'devices': os.environ.get('CUDA_VISIBLE_DEVICES'), 'flotilla': os.environ.get('FLOTILLA_DEVICES')} for x in xs])"

    static func config(_ name: String, processes: Int, maxProcesses: Int? = nil, devices: Int) -> PredictorPoolConfig {
        var config = Fixtures.config(name, script: "identity.py", batchSize: 1, processes: processes, maxProcesses: maxProcesses)
        config.command = .process(argv: ["python3", "-c", reporter])
        config.devicesPerProcess = devices
        return config
    }

    @Test("two stages share the worker's devices: every process has its own, never one another holds; a full pool stays its size; a replaced process gets its devices back")
    func poolsShareDevices() async throws {
        let devices = try DeviceAllocator(devices: ["0", "1", "2", "3", "4"])
        let big = try PredictorPool(config: Self.config("big", processes: 2, maxProcesses: 3, devices: 2), logger: Logger(label: "t"), devices: devices)
        let small = try PredictorPool(config: Self.config("small", processes: 1, devices: 1), logger: Logger(label: "t"), devices: devices)
        try await big.start()
        try await small.start()
        try await waitUntil { await big.state().processes == 2 }
        var seen: [Int64: String] = [:]
        for _ in 0..<20 {
            async let a = big.predict(Fixtures.samples(4))
            async let b = small.predict(Fixtures.samples(2))
            for result in await a + b {
                guard case .object(let answer) = result.value ?? .null, case .int(let pid) = answer["pid"] ?? .null,
                      let slice = answer["devices"]?.stringValue else { Issue.record("no answer: \(result)"); continue }
                #expect(answer["flotilla"]?.stringValue == slice)
                if let earlier = seen[pid] { #expect(earlier == slice, "a process's devices never change") }
                seen[pid] = slice
            }
        }
        #expect(seen.count == 3)
        let all = seen.values.flatMap { $0.split(separator: ",").map(String.init) }
        #expect(all.count == 5 && Set(all).count == 5, "every device held by exactly one process: \(seen)")
        let bigDevices = await big.state().devices, smallDevices = await small.state().devices
        #expect(bigDevices.count == 4 && smallDevices.count == 1 && Set(bigDevices + smallDevices).count == 5)

        // No device is free: growing the big pool leaves it at its size.
        await big.resize(to: 3)
        try await waitUntil { await big.state().desired == 2 }
        let processes = await big.state().processes
        #expect(processes == 2)

        // The small stage's process is killed: its replacement gets the freed device.
        let freed = try #require(smallDevices.first)
        let smallPID = try #require(seen.first { $0.value == freed }?.key)
        kill(pid_t(smallPID), SIGKILL)
        try await waitUntil {
            let state = await small.state()
            return state.restarts == 1 && state.processes == 1
        }
        let after = await small.predict(Fixtures.samples(1))
        #expect(after.first?.value?["devices"]?.stringValue == freed)
        await big.shutdown()
        await small.shutdown()
        #expect(devices.freeCount == 5, "a shut-down pool gives every device back")
    }

    @Test("a stage that needs devices fails to start with the reason when none are free")
    func noFreeDevice() async throws {
        let devices = try DeviceAllocator(devices: ["0"])
        #expect(devices.take(1, for: "other#0") == ["0"])
        let pool = try PredictorPool(config: Self.config("gpu", processes: 1, devices: 1), logger: Logger(label: "t"), devices: devices)
        let error = await #expect(throws: FlotillaError.self) { try await pool.start() }
        #expect(error?.message.contains("needs 1 device(s) per process; 0 of the worker's 1 are free") == true)
        #expect(throws: FlotillaError.self) { try PredictorPool(config: Self.config("gpu", processes: 1, devices: 1), logger: Logger(label: "t")) }
    }
}
