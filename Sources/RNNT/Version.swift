/// The version of this library and of the `stt` tool built with it.
public enum STTKitVersion {
    /// "MAJOR.MINOR.PATCH".
    public static let string = "0.5.0"
}
