import Testing
import STTTensor

@Test func storageIsAlignedAndZeroed() {
    let t = Tensor(zeros: [3, 5])
    #expect(Int(bitPattern: t.data) % 64 == 0)
    #expect(t.array == [Float](repeating: 0, count: 15))
}

@Test func reshapeSharesStorage() {
    let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    let r = t.reshaped([3, 2])
    r[flat: 0] = 9
    #expect(t[flat: 0] == 9)
    #expect(r.shape == [3, 2])
}
