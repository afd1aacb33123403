"""The foundation every wormflow package stands on, and that imports none of them: the
error family (:mod:`.errors`), provenance (:mod:`.provenance`), atomic writing
(:mod:`.atomic`), and the neuron registry with label parsing (:mod:`.neurons`, :mod:`.labels`)."""
