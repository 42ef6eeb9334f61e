// The RNN-T prediction network, joint, and greedy decoding.
