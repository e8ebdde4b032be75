"""Explicit rank: structural. The model is built with `rank` (see trainables.models), so training
and evaluation need nothing from the knob itself."""

from trainables.compression._base import Compression


class ExplicitRank(Compression):
    kind = "rank"
    raises = "spectral_comp"
    weak = {"rank": 32}
    strong = {"rank": 4}
