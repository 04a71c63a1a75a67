"""Every torch module of seqlab, one module each (imported by name; this package loads none):

- ``cells``: the cell and norm names a config may ask for and each cell's gate blocks (no torch);
- ``rnn``: the stacked recurrent regressor, RNN/LSTM/GRU × depth × norm (``StackedRNN``);
- ``batched``: K of them with stacked weights, trained as one (batched packs);
- ``fused``: K of them run by the fused Triton kernels (fused packs);
- ``triton_rnn``: those kernels, forward and backward;
- ``recurrence``: the recurrence of K independent single-layer cells from their projected inputs;
- ``cpu_rnn``: hand-written CPU recurrent layers.
"""
