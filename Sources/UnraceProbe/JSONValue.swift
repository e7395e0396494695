import Foundation

/// A JSON document, for reading an answer's fields and deriving bodies.
enum JSONValue: Codable, Hashable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// `bytes` parsed, or `nil` when they are not JSON.
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// The document as compact JSON with sorted keys.
    var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(self))) ?? []
    }

    /// A top-level field of an object.
    subscript(field: String) -> JSONValue? {
        if case .object(let fields) = self { return fields[field] }
        return nil
    }

    /// The value as text, for identities and evidence: strings bare, numbers as written.
    var text: String? {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .number(let value): String(value)
        case .bool(let value): String(value)
        default: nil
        }
    }

    /// A count: the number itself, an array's length.
    var count: Int64? {
        switch self {
        case .integer(let value): value
        case .number(let value) where value.rounded() == value && abs(value) < 9e15: Int64(value)
        case .array(let items): Int64(items.count)
        default: nil
        }
    }
}

/// How a body is changed so the server sees another request (key reuse) or so a write can be told
/// apart from the others (lost update): one field, chosen by name order.
struct BodyVariation: Sendable {
    /// The field changed.
    let field: String
    private let original: [String: JSONValue]
    private let isInteger: Bool

    /// The variation of `body`: its first string field (by name), else its first integer field;
    /// `nil` when `body` is not a JSON object with either.
    init?(of body: [UInt8], preferring preference: Preference) {
        guard case .object(let fields)? = JSONValue.parse(body) else { return nil }
        let names = fields.keys.sorted()
        let strings = names.filter { if case .string = fields[$0] { true } else { false } }
        let integers = names.filter { if case .integer = fields[$0] { true } else { false } }
        let chosen: (String, Bool)? =
            switch preference {
            case .integerFirst: integers.first.map { ($0, true) } ?? strings.first.map { ($0, false) }
            case .stringFirst: strings.first.map { ($0, false) } ?? integers.first.map { ($0, true) }
            }
        guard let (field, isInteger) = chosen else { return nil }
        (self.field, self.original, self.isInteger) = (field, fields, isInteger)
    }

    /// Which kind of field a variation changes first.
    enum Preference { case integerFirst, stringFirst }

    /// The body with the field's value made the `index`-th variant (1 and up): an integer plus
    /// `index`, a string with a marker of `run` and `index` appended.
    func body(_ index: Int, run: String) -> [UInt8] {
        var fields = original
        fields[field] = value(index, run: run)
        return JSONValue.object(fields).bytes
    }

    /// The field's value in the `index`-th variant.
    func value(_ index: Int, run: String) -> JSONValue {
        switch original[field] {
        case .integer(let value)?: .integer(value &+ Int64(index))
        case .string(let value)?: .string(value + "-\(run)-\(index)")
        default: .integer(Int64(index))
        }
    }
}
