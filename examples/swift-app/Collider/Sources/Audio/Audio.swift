public struct AudioBuffer { public init() {} }
