import FlotillaCore
import Logging

/// Process bookkeeping: starting, handing out, releasing, replacing and retiring processes.
extension PredictorPool {
    /// Spawns process `id` and waits for its hello.
    func launch(id: Int) async -> Result<PredictorProcess, FlotillaError> {
        guard case .process(let argv) = config.command else {
            return .failure(FlotillaError(.internal, "predictor '\(config.name)' is a builtin and has no process"))
        }
        var environment = config.environment
        if let slice = deviceSlices[id] {
            // CUDA's variable for CUDA programs; FLOTILLA_DEVICES for any other kind of accelerator.
            environment["CUDA_VISIBLE_DEVICES"] = slice.joined(separator: ",")
            environment["FLOTILLA_DEVICES"] = slice.joined(separator: ",")
        }
        do {
            let process = try await PredictorProcess.launch(
                stage: config.name, argv: argv, environment: environment,
                workingDirectory: config.workingDirectory, startupTimeout: config.startupTimeout, logger: logger,
                onUnexpectedExit: { [weak self] fault in
                    guard let self else { return }
                    Task { await self.processEnded(id, fault) }
                }
            )
            return .success(process)
        } catch {
            return .failure(error)
        }
    }

    /// Takes process `id`'s devices before it starts; false when too few are free (nothing
    /// taken). A stage without devices always gets its (empty) slice.
    func reserveDevices(_ id: Int) -> Bool {
        guard config.devicesPerProcess > 0 else { return true }
        guard let slice = devices?.take(config.devicesPerProcess, for: "\(config.name)#\(id)") else { return false }
        deviceSlices[id] = slice
        return true
    }

    /// Gives process `id`'s devices back (it ended or never started).
    func freeDevices(_ id: Int) {
        if let slice = deviceSlices.removeValue(forKey: id) { devices?.give(slice) }
    }

    /// Whether one more process could get its devices now.
    var devicesForOneMore: Bool {
        config.devicesPerProcess == 0 || (devices?.freeCount ?? 0) >= config.devicesPerProcess
    }

    func add(_ id: Int, _ process: PredictorProcess) {
        slots[id] = Slot(process: process, lastUsed: .now)
        if let maxBatch = process.hello?.maxBatch { childMaxBatch = min(childMaxBatch ?? .max, maxBatch) }
        offer(id)
    }

    /// Sends the longest waiting batches to process `id` while it has room for more, or parks it
    /// when it has nothing to do. The caller sends them (the task that got a reply, usually), so a
    /// waiting batch's task is not woken to send it: it wakes once, with its reply.
    func offer(_ id: Int) {
        while !waiters.isEmpty, let slot = slots[id], slot.running < PredictorProcess.pipelineDepth {
            let waiter = waiters.removeFirst()
            send(waiter.samples, to: id, waiter.continuation)
        }
        if slots[id]?.running == 0 { idle.append(id) }
    }

    /// Counts one more batch on process `id` (past the first, it waits behind another) and sends
    /// `samples` to it; `continuation` gets the reply.
    private func send(_ samples: [PredictorSample], to id: Int, _ continuation: CheckedContinuation<Dispatched, Never>) {
        guard let process = slots[id]?.process else { return continuation.resume(returning: .unavailable(shutDownError)) }
        slots[id]?.running += 1
        if let slot = slots[id], slot.running > 1, slot.queuedSince == nil { slots[id]?.queuedSince = .now }
        let start = ContinuousClock.now
        process.submit(samples, timeout: config.batchTimeout) { result in
            continuation.resume(returning: .ran(id: id, result, elapsed: start.duration(to: .now)))
        }
    }

    /// Runs one batch on a healthy process: an idle one, else one with room behind its current
    /// batch; else it waits for one to be free or started, which sends it.
    func dispatch(_ samples: [PredictorSample]) async -> Dispatched {
        guard phase == .running else { return .unavailable(shutDownError) }
        if let id = freeProcess() {
            return await withCheckedContinuation { send(samples, to: id, $0) }
        }
        if slots.isEmpty && starting == 0 {
            // Scaled to zero, or every start so far failed: start one for this batch.
            desired = max(desired, 1)
            scheduleLaunch(after: .zero)
        }
        return await withCheckedContinuation { continuation in
            waiters.append(Waiter(since: .now, samples: samples, continuation: continuation))
        }
    }

    /// An idle healthy process, else the least loaded one with room.
    private func freeProcess() -> Int? {
        while let id = idle.popLast() {
            guard let slot = slots[id] else { continue }
            guard slot.process.isHealthy else {
                replace(id, because: nil)
                continue
            }
            return id
        }
        // Pipelining: no process is idle, so the batch goes behind the current one of a process
        // that has room (the least loaded: the one that started first, when each has one).
        return slots.filter { $0.value.running < PredictorProcess.pipelineDepth && !$0.value.draining && $0.value.process.isHealthy }
            .min { $0.value.running < $1.value.running || ($0.value.running == $1.value.running && $0.key < $1.key) }?.key
    }

    /// A process finished a batch normally.
    func release(_ id: Int) {
        guard let slot = slots[id] else { return }
        guard slot.process.isHealthy else {
            replace(id, because: nil)
            return
        }
        let running = slot.running - 1
        slots[id]?.running = running
        slots[id]?.queuedSince = nil  // the batch that waited behind, if any, runs now
        slots[id]?.lastUsed = .now
        if slot.draining || slots.count + starting > desired {
            // Surplus: it takes nothing new, and stops once what it holds is answered.
            if running == 0 { retire(id) } else { slots[id]?.draining = true }
        } else {
            offer(id)
        }
    }

    /// A process faulted while running a batch (it is dead already).
    func faulted(_ id: Int, _ fault: ProcessFault) {
        replace(id, because: fault)
    }

    /// A process died or was killed outside a batch (junk on stdout while idle, a crash).
    func processEnded(_ id: Int, _ fault: ProcessFault) {
        // A busy process is handled by the batch that is running on it.
        guard let slot = slots[id], !slot.busy else { return }
        replace(id, because: fault)
    }

    /// Drops a dead process and starts a replacement after the current backoff.
    func replace(_ id: Int, because fault: ProcessFault?) {
        guard let slot = slots.removeValue(forKey: id) else { return }
        idle.removeAll { $0 == id }
        slot.process.kill()
        freeDevices(id)
        restartCount += 1
        metrics.restarts.increment()
        guard phase == .running else { return }
        let delay = nextBackoff()
        logger.warning("replacing predictor process", metadata: [
            "flotilla.pid": "\(slot.process.pid)", "flotilla.fault": "\(fault.map { "\($0)" } ?? "exited")",
            "flotilla.backoff": "\(delay.seconds)s",
        ])
        if slots.count + starting < desired { scheduleLaunch(after: delay) }
    }

    /// Stops a process the pool no longer needs.
    func retire(_ id: Int) {
        guard let slot = slots.removeValue(forKey: id) else { return }
        idle.removeAll { $0 == id }
        let grace = config.shutdownGrace
        spawnTask { [self] in
            await slot.process.shutdown(grace: grace)
            await freeDevices(id)  // once it is gone: never two processes on one device
        }
    }

    func nextBackoff() -> Duration {
        let delay = backoff
        backoff = min(backoff * 2, config.maxBackoff)
        return delay
    }

    /// Starts one process after `delay`, in a tracked background task.
    func scheduleLaunch(after delay: Duration) {
        starting += 1
        let id = nextID
        nextID += 1
        spawnTask { [self] in
            if delay > .zero { try? await Task.sleep(for: delay) }
            await completeLaunch(id)
        }
    }

    func completeLaunch(_ id: Int) async {
        guard phase == .running else {
            starting -= 1
            return
        }
        guard reserveDevices(id) else {
            // The other processes hold every device: the pool stays this size until one ends.
            starting -= 1
            desired = max(slots.count + starting, 1)
            logger.info("predictor pool held at its size: no free device", metadata: [
                "flotilla.processes": "\(desired)", "flotilla.devices": "\(devices?.holders.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } ?? [])",
            ])
            return
        }
        let result = await launch(id: id)
        starting -= 1
        switch result {
        case .success(let process):
            if phase != .running || slots.count >= desired {
                // Shut down or resized down while it was starting.
                let grace = config.shutdownGrace
                if phase == .running {
                    spawnTask { [self] in
                        await process.shutdown(grace: grace)
                        await freeDevices(id)
                    }
                } else {
                    await process.shutdown(grace: grace)
                    freeDevices(id)
                }
                return
            }
            add(id, process)
        case .failure(let error):
            freeDevices(id)
            logger.error("cannot start a predictor process", metadata: ["flotilla.error": "\(error.message)"])
            if slots.isEmpty && starting == 0 {
                // Nothing can run the waiting batches: answer them rather than hang.
                let failure = PredictionError(.unavailable, error.message)
                let waiting = waiters
                waiters.removeAll()
                for waiter in waiting { waiter.continuation.resume(returning: .unavailable(failure)) }
            }
            if slots.count + starting < desired { scheduleLaunch(after: nextBackoff()) }
        }
    }

    /// Runs `body` in a task that the pool tracks, so `shutdown()` can cancel and await it.
    func spawnTask(_ body: @escaping @Sendable () async -> Void) {
        let key = nextTaskKey
        nextTaskKey += 1
        tasks[key] = Task { [self] in
            await body()
            taskDone(key)
        }
    }

    func taskDone(_ key: Int) {
        tasks[key] = nil
    }

    /// One look of the autoscaler: grow by one when a batch has waited `growAfter` for a process
    /// (and the worker's budget has room), else shrink by one when a process has been idle for
    /// `shrinkAfterIdle` — or only `yieldAfterIdle` while another stage's batches wait.
    func autoscaleTick(_ policy: PredictorPoolConfig.Autoscale) {
        guard phase == .running else { return }
        let now = ContinuousClock.now
        budget?.report(config.name, processes: slots.count + starting, waiting: !waiters.isEmpty)
        let queued = slots.values.compactMap(\.queuedSince) + waiters.prefix(1).map(\.since)
        if let oldest = queued.min() {
            if oldest.duration(to: now) >= policy.growAfter, desired < config.maxProcesses, starting == 0, devicesForOneMore,
               budget?.tryGrow(config.name) ?? true {
                desired += 1
                logger.info("growing predictor pool: batches are waiting for a process", metadata: ["flotilla.processes": "\(desired)"])
                scheduleLaunch(after: .zero)
            }
            return
        }
        // Not while a process is starting: the pool is still settling on its size.
        guard desired > config.minProcesses, starting == 0 else { return }
        let yielding = budget?.othersWaiting(config.name) == true && (budget?.used ?? 0) >= (budget?.total ?? .max)
        let idleLimit = yielding ? policy.yieldAfterIdle : policy.shrinkAfterIdle
        let stale = idle.compactMap { id in slots[id].map { (id, $0.lastUsed) } }
            .filter { $0.1.duration(to: now) >= idleLimit }
            .min { $0.1 < $1.1 }
        if let (id, _) = stale {
            desired -= 1
            budget?.report(config.name, processes: slots.count + starting - 1, waiting: false)
            logger.info(yielding ? "shrinking predictor pool: another stage is waiting for the worker's cores" : "shrinking predictor pool: a process has been idle",
                        metadata: ["flotilla.processes": "\(desired)"])
            retire(id)
        }
    }
}
