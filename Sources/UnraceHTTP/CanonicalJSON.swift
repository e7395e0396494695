import Foundation

/// A strict JSON reader that writes the canonical form: it parses the document into a tree of
/// byte ranges (one pass), sorts each object's members by decoded key, and writes the output
/// once. `nil` for anything that is not JSON (invalid UTF-8 in a string, a bad escape, trailing
/// bytes), or nested deeper than ``depthMaximum``.
struct CanonicalJSON {
    static let depthMaximum = 256

    private enum Node {
        /// A number or literal, copied as sent.
        case raw(Range<Int>)
        /// A string's source, quotes included: written in canonical escaping.
        case string(Range<Int>)
        /// An array's elements, as node indices.
        case array([Int])
        /// An object's members: each key's canonical encoding (quotes included) and value node.
        case object([(key: [UInt8], value: Int)])
    }

    private let bytes: [UInt8]
    private var index = 0
    private var nodes: [Node] = []

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() -> [UInt8]? {
        guard let root = value(depth: 0) else { return nil }
        skipSpace()
        guard index == bytes.count else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        write(root, into: &output)
        return output
    }

    // MARK: Reading

    private mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func add(_ node: Node) -> Int {
        nodes.append(node)
        return nodes.count - 1
    }

    private mutating func value(depth: Int) -> Int? {
        guard depth < Self.depthMaximum else { return nil }
        skipSpace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object(depth: depth)
        case UInt8(ascii: "["): return array(depth: depth)
        case UInt8(ascii: "\""): return string().map { add(.string($0)) }
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    private mutating func object(depth: Int) -> Int? {
        index += 1
        var members: [(key: [UInt8], value: Int)] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return add(.object([]))
        }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            guard let value = value(depth: depth + 1) else { return nil }
            var encoded: [UInt8] = []
            Self.writeString(bytes, key, into: &encoded)
            members.append((encoded, value))
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { return nil }
            index += 1
            break
        }
        // A stable sort on the decoded keys' canonical bytes: repeated keys keep their order.
        let sorted = members.enumerated().sorted { a, b in
            a.element.key.lexicographicallyPrecedes(b.element.key) || (a.element.key == b.element.key && a.offset < b.offset)
        }
        return add(.object(sorted.map(\.element)))
    }

    private mutating func array(depth: Int) -> Int? {
        index += 1
        var elements: [Int] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return add(.array([]))
        }
        while true {
            guard let value = value(depth: depth + 1) else { return nil }
            elements.append(value)
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { return nil }
            index += 1
            return add(.array(elements))
        }
    }

    /// A string's range, quotes included, once its escapes and UTF-8 are checked.
    private mutating func string() -> Range<Int>? {
        let start = index
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return start..<index
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { return nil }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard Self.hex4(bytes, at: index + 2) != nil else { return nil }
                    index += 6
                default:
                    return nil
                }
            case 0x00..<0x20:
                return nil
            case 0x00..<0x80:
                index += 1
            default:
                guard let length = Self.utf8Length(bytes, at: index) else { return nil }
                index += length
            }
        }
        return nil
    }

    private mutating func literal(_ text: String) -> Int? {
        let expected = Array(text.utf8)
        guard index + expected.count <= bytes.count, bytes[index..<(index + expected.count)].elementsEqual(expected) else { return nil }
        index += expected.count
        return add(.raw((index - expected.count)..<index))
    }

    /// A number in JSON's grammar, copied as sent.
    private mutating func number() -> Int? {
        let start = index
        func digits() -> Int {
            let first = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            return index - first
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") { index += 1 } else if digits() == 0 { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return nil }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return nil }
        }
        return add(.raw(start..<index))
    }

    // MARK: Writing

    private func write(_ node: Int, into output: inout [UInt8]) {
        switch nodes[node] {
        case .raw(let range):
            output.append(contentsOf: bytes[range])
        case .string(let range):
            Self.writeString(bytes, range, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                write(element, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (position, member) in members.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                output.append(contentsOf: member.key)
                output.append(UInt8(ascii: ":"))
                write(member.value, into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Writes a checked string (its range, quotes included) in canonical form: every escape
    /// decoded, then only `"`, `\` and control characters escaped (short forms where JSON has
    /// them, else `\u00xx`); a lone surrogate is written as a lowercase `\udxxx` escape.
    private static func writeString(_ bytes: [UInt8], _ range: Range<Int>, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var index = range.lowerBound + 1
        let end = range.upperBound - 1
        while index < end {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                if byte == UInt8(ascii: "\"") || byte < 0x20 {
                    writeEscaped(UInt32(byte), into: &output)
                } else {
                    output.append(byte)
                }
                index += 1
                continue
            }
            let code = bytes[index + 1]
            index += 2
            let scalar: UInt32
            switch code {
            case UInt8(ascii: "b"): scalar = 0x08
            case UInt8(ascii: "f"): scalar = 0x0C
            case UInt8(ascii: "n"): scalar = 0x0A
            case UInt8(ascii: "r"): scalar = 0x0D
            case UInt8(ascii: "t"): scalar = 0x09
            case UInt8(ascii: "u"):
                let unit = hex4(bytes, at: index)!
                index += 4
                if (0xD800..<0xDC00).contains(unit), index + 6 <= end, bytes[index] == UInt8(ascii: "\\"),
                    bytes[index + 1] == UInt8(ascii: "u"), let low = hex4(bytes, at: index + 2), (0xDC00..<0xE000).contains(low)
                {
                    index += 6
                    scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    scalar = unit
                }
            default: scalar = UInt32(code)  // \" \\ \/
            }
            if (0xD800..<0xE000).contains(scalar) {
                // A lone surrogate: no character to write; one spelling of it.
                output.append(contentsOf: Array("\\u".utf8) + hexDigits(scalar))
            } else if scalar == 0x22 || scalar == 0x5C || scalar < 0x20 {
                writeEscaped(scalar, into: &output)
            } else {
                output.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    private static func writeEscaped(_ scalar: UInt32, into output: inout [UInt8]) {
        switch scalar {
        case 0x22: output += Array("\\\"".utf8)
        case 0x5C: output += Array("\\\\".utf8)
        case 0x08: output += Array("\\b".utf8)
        case 0x0C: output += Array("\\f".utf8)
        case 0x0A: output += Array("\\n".utf8)
        case 0x0D: output += Array("\\r".utf8)
        case 0x09: output += Array("\\t".utf8)
        default: output += Array("\\u".utf8) + hexDigits(scalar)
        }
    }

    private static func hexDigits(_ value: UInt32) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        return [12, 8, 4, 0].map { digits[Int((value >> UInt32($0)) & 0xF)] }
    }

    /// The value of four hex digits at `index`, or `nil`.
    private static func hex4(_ bytes: [UInt8], at index: Int) -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for byte in bytes[index..<(index + 4)] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// The length of the well-formed UTF-8 sequence (of 2 to 4 bytes) at `index`, or `nil`
    /// (overlong forms, surrogates and values past U+10FFFF are not well-formed).
    private static func utf8Length(_ bytes: [UInt8], at index: Int) -> Int? {
        let lead = bytes[index]
        let (length, low, high): (Int, UInt8, UInt8) =
            switch lead {
            case 0xC2...0xDF: (2, 0x80, 0xBF)
            case 0xE0: (3, 0xA0, 0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (3, 0x80, 0xBF)
            case 0xED: (3, 0x80, 0x9F)
            case 0xF0: (4, 0x90, 0xBF)
            case 0xF1...0xF3: (4, 0x80, 0xBF)
            case 0xF4: (4, 0x80, 0x8F)
            default: (0, 0, 0)
            }
        guard length > 0, index + length <= bytes.count, (low...high).contains(bytes[index + 1]) else { return nil }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[index + offset]) { return nil }
        return length
    }
}
