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

    @Test("every test it names as an invariant's guard is a test in the file it names")
    func guardsExist() throws {
        let parts = Self.text.components(separatedBy: "\n## 6.")
        try #require(parts.count == 2, "the invariants section (## 6.) is there, once")
        let section = parts[1].replacingOccurrences(of: "\n", with: " ")
        // In reading order: a backticked test file, then the quoted test names that follow it.
        let tokens = try NSRegularExpression(pattern: #"`(Tests/[^`]+\.swift)`|"([^"]+)""#)
        let testNames = try NSRegularExpression(pattern: #"@Test\(\s*"((?:[^"\\]|\\.)*)""#)
        var file: String?
        var names: [String] = []
        var checked = 0
        for match in tokens.matches(in: section, range: NSRange(section.startIndex..., in: section)) {
            if let range = Range(match.range(at: 1), in: section) {
                file = String(section[range])
                let source = try String(contentsOf: Self.root.appendingPathComponent(file!), encoding: .utf8)
                names = testNames.matches(in: source, range: NSRange(source.startIndex..., in: source)).compactMap {
                    Range($0.range(at: 1), in: source).map { String(source[$0]) }
                }
            } else if let range = Range(match.range(at: 2), in: section), let file {
                // The document may shorten a name with "…" where it breaks off.
                let quoted = String(section[range])
                let shortened = quoted.hasSuffix("…")
                let name = quoted.components(separatedBy: "…")[0].split(whereSeparator: \.isWhitespace).joined(separator: " ")
                let found = names.contains { shortened ? $0.hasPrefix(name) : $0 == name }
                #expect(found, "\(file) has no @Test named \"\(name)\"")
                checked += 1
            }
        }
        #expect(checked >= 10, "the section names the tests that guard its invariants")
    }
}

/// The error table is the list users switch on: every code `UnraceError` declares is on it.
@Suite("ErrorsAndLimits.md")
struct ErrorTableDocTests {
    @Test("every UnraceError code is in the error table, by its raw value")
    func everyCodeListed() throws {
        let root = ArchitectureDocTests.root
        let source = try String(contentsOf: root.appendingPathComponent("Sources/UnraceCore/UnraceError.swift"), encoding: .utf8)
        let table = try String(contentsOf: root.appendingPathComponent("Sources/Unrace/Unrace.docc/ErrorsAndLimits.md"), encoding: .utf8)
        let declared = try NSRegularExpression(pattern: #"^\s*case [a-zA-Z]+ = "([a-z_]+)"$"#, options: .anchorsMatchLines)
            .matches(in: source, range: NSRange(source.startIndex..., in: source))
            .map { String(source[Range($0.range(at: 1), in: source)!]) }
        #expect(declared.count >= 30 && declared.contains("outcome_unknown"), "\(declared)")
        for code in declared { #expect(table.contains("| `\(code)` |"), "\(code) is not in the error table") }
    }
}
