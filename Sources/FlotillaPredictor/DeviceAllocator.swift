import FlotillaCore
import Synchronization

/// The worker's accelerators, handed out in slices to predictor processes of every stage: a
/// device belongs to one process at a time, and comes back when that process ends.
public final class DeviceAllocator: Sendable {
    /// The devices, in the order slices are taken ("0", "1", ... or UUIDs).
    public let devices: [String]
    private let owners: Mutex<[String: String]>

    /// Fails on an empty or repeated id.
    public init(devices: [String]) throws(FlotillaError) {
        if let bad = devices.first(where: { $0.isEmpty || $0.contains(",") }) {
            throw FlotillaError(.invalidConfiguration, "device id '\(bad)' is empty or has a comma")
        }
        guard Set(devices).count == devices.count else {
            throw FlotillaError(.invalidConfiguration, "the device list \(devices.joined(separator: ",")) names a device twice")
        }
        self.devices = devices
        owners = Mutex([:])
    }

    /// `count` free devices for `owner` (e.g. "classify#3"), the first free ones in list order;
    /// nil, and nothing taken, when fewer are free.
    public func take(_ count: Int, for owner: String) -> [String]? {
        owners.withLock { owners in
            let free = devices.filter { owners[$0] == nil }
            guard free.count >= count else { return nil }
            let slice = Array(free.prefix(count))
            for device in slice { owners[device] = owner }
            return slice
        }
    }

    /// Gives `slice` back.
    public func give(_ slice: [String]) {
        owners.withLock { owners in for device in slice { owners[device] = nil } }
    }

    /// Devices no process holds.
    public var freeCount: Int { owners.withLock { owners in devices.filter { owners[$0] == nil }.count } }

    /// Device → the process holding it.
    public var holders: [String: String] { owners.withLock { $0 } }

    /// Why `stages` (name, devices per process, fewest processes) cannot start on these devices;
    /// nil when their minimum pools fit together.
    public func problem(with stages: [(name: String, perProcess: Int, minProcesses: Int)]) -> String? {
        let needing = stages.filter { $0.perProcess > 0 }
        guard !needing.isEmpty else { return nil }
        let needed = needing.reduce(0) { $0 + $1.perProcess * max(1, $1.minProcesses) }
        guard needed > devices.count else { return nil }
        let parts = needing.map { "\($0.name) \(max(1, $0.minProcesses)) × \($0.perProcess)" }.joined(separator: ", ")
        let have = devices.isEmpty ? "none (give --devices 0,1,... or set CUDA_VISIBLE_DEVICES)" : "\(devices.count) (\(devices.joined(separator: ",")))"
        return "the stages need \(needed) device(s) for their smallest pools (\(parts)); this worker has \(have)"
    }
}
