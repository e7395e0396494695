extension String {
    /// This text with every control character but newline and tab written as `\u{…}`: text a
    /// server or a file chose (a probed answer, a history's names) cannot move a terminal's
    /// cursor, erase what was printed before it, or set the clipboard when a report prints it.
    package var terminalSafe: String { escaping { Self.isControl($0) && $0 != "\n" && $0 != "\t" } }

    /// ``terminalSafe`` with newlines and carriage returns written as `\u{…}` too: a value set
    /// into one line of a report cannot start a line of its own (a forged "no anomalies").
    package var terminalSafeLine: String { escaping { Self.isControl($0) && $0 != "\t" } }

    private func escaping(_ escaped: (Unicode.Scalar) -> Bool) -> String {
        guard unicodeScalars.contains(where: escaped) else { return self }
        var safe = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if escaped(scalar) {
                safe.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                safe.append(scalar)
            }
        }
        return String(safe)
    }

    /// C0 controls, DEL, and C1 controls (8-bit escape sequences).
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}
