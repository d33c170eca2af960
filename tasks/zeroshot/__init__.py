"""The protocol steps shared by the zero-shot understanding tasks (features of whole videos, label propagation, the
dense CRF, temporal localization, linear probes, the open-vocabulary class split), each in its own module so that it
can be tested on hand-computed cases apart from any data set."""
