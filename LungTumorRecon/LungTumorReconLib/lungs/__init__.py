"""The lung stage: the Viterbi point snake and its helpers, the threshold and ResUNet lungs, correction."""
