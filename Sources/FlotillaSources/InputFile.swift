#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore

/// A regular file open for reading, with errors that name the path and the OS's reason.
///
/// Every call blocks; callers run it off the cooperative pool (see ``Blocking``).
final class InputFile {
    let path: String
    let size: Int64
    private let descriptor: Int32

    /// Opens `path`; refuses directories and other non-regular files.
    init(path: String) throws(FlotillaError) {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FlotillaError(.invalidInput, "cannot open input \(path): \(Self.reason(errno))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            close(descriptor)
            throw FlotillaError(.invalidInput, "cannot stat input \(path): \(Self.reason(code))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            let what = (info.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"
            throw FlotillaError(.invalidInput, "input \(path) is \(what), expected a JSON-lines or CSV file")
        }
        self.descriptor = descriptor
        self.size = Int64(info.st_size)
        // Sequential scans benefit from aggressive read-ahead; a hint only, errors ignored.
        #if canImport(Glibc)
        _ = posix_fadvise(descriptor, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
        #endif
    }

    deinit { close(descriptor) }

    /// Reads the next bytes into `buffer`; 0 at end of file.
    func readChunk(into buffer: UnsafeMutableRawBufferPointer) throws(FlotillaError) -> Int {
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            throw FlotillaError(.invalidInput, "cannot read input \(path): \(Self.reason(errno))")
        }
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or throws naming the file when it is shorter.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(FlotillaError) {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw FlotillaError(.invalidInput, "cannot read input \(path): \(Self.reason(errno))")
            }
            if count == 0 {
                throw FlotillaError(.invalidInput, "input changed since submit: \(path) (it ends before byte \(offset + Int64(buffer.count)))")
            }
            done += count
        }
    }

    /// The byte at `offset`.
    func byte(at offset: Int64) throws(FlotillaError) -> UInt8 {
        var byte: UInt8 = 0
        try withUnsafeMutableBytes(of: &byte) { (buffer) throws(FlotillaError) in try readExactly(into: buffer, at: offset) }
        return byte
    }

    static func reason(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
