import Foundation
import Testing

/// ARCHITECTURE.md is a contract: every repository path it names exists, and every test it names
/// as a guard of an invariant is a test in the file it names.
@Suite("ARCHITECTURE.md")
struct ArchitectureDocTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var text: String { (try? String(contentsOf: root.appendingPathComponent("ARCHITECTURE.md"), encoding: .utf8)) ?? "" }

    /// The backticked spans that look like repository paths: they start with a top-level folder or
    /// name a file at the root.
    static var paths: [String] {
        let spans = text.components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let roots = ["Sources/", "Tests/", "Examples/", "scripts/", "Benchmarks/", ".ci/"]
        return spans.filter { span in
            !span.contains(" ") && (roots.contains { span.hasPrefix($0) } || ["Package.swift", "README.md"].contains(span))
        }
    }

    @Test("every path it names exists")
    func pathsExist() {
        #expect(Self.paths.count > 50, "the map names the files it talks about")
        for path in Set(Self.paths).sorted() {
            let exists = FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path)
            #expect(exists, "\(path) does not exist")
        }
    }

    @Test("every test it names as an invariant's guard is in the file it names")
    func guardsExist() throws {
        let section = try #require(Self.text.components(separatedBy: "## 6.").last)
        var checked = 0
        // `Tests/…/X.swift`: "name" — the name may end in "…" where the document shortens it.
        let pattern = try NSRegularExpression(pattern: #"`(Tests/[^`]+\.swift)`[^`]*?:\s*"([^"]+)"(?:,\s*"([^"]+)")?"#)
        let joined = section.replacingOccurrences(of: "\n  ", with: " ")
        for match in pattern.matches(in: joined, range: NSRange(joined.startIndex..., in: joined)) {
            let file = String(joined[Range(match.range(at: 1), in: joined)!])
            let source = try String(contentsOf: Self.root.appendingPathComponent(file), encoding: .utf8)
            for group in 2...3 {
                guard let range = Range(match.range(at: group), in: joined) else { continue }
                let name = joined[range].replacingOccurrences(of: "…", with: "")
                let found = source.contains("\"\(name)")
                #expect(found, "\(file) has no test named \(name)")
                checked += 1
            }
        }
        #expect(checked >= 8)
    }
}
