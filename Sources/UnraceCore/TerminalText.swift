extension String {
    /// This text with every control character but newline and tab written as `\u{…}`: text a
    /// server or a file chose (a probed answer, a history's names) cannot move a terminal's
    /// cursor, erase what was printed before it, or set the clipboard when a report prints it.
    package var terminalSafe: String {
        guard unicodeScalars.contains(where: Self.isControl) else { return self }
        var safe = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if Self.isControl(scalar) {
                safe.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                safe.append(scalar)
            }
        }
        return String(safe)
    }

    /// C0 controls but newline and tab, DEL, and C1 controls (8-bit escape sequences).
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }
}
