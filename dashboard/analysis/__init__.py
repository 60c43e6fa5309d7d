"""Checkpoint-to-checkpoint analyses: which part of the model moved (:mod:`.drift`) and which part
changed the answer (:mod:`.patching`)."""
