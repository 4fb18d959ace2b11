"""Write gnd-hard.json, the demo's hand-judged ground truth (revisitop format), from the judgements below.

Run from anywhere: ``python examples/demo/make_gnd_hard.py``. Image names are relative to examples/demo, so the
database holds the six scenes and the 20 distractors. The rule the judgements follow is in docs/demo.md:
a query is a photo with a box around one detail a person would name (a door, a sign, a toy's head), or a whole
photo whose view differs in scale or rotation; every database photo was looked at and marked
easy (the detail clearly visible, little viewpoint change), hard (visible but small, oblique, seen from another
side, rotated or at night) or junk (too small or too hidden to decide); everything else is a negative.
Query photos are not in the database.
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

SC = "sacre_coeur/"
# (query photo, box [x1, y1, x2, y2] in pixels or None, the detail, easy, hard, junk) — names below images/
QUERIES = [
    ("berliner_dom/01", [184, 112, 320, 184], "mosaic above the portal",
     ["berliner_dom/02", "berliner_dom/03"], [], []),
    ("lightglue_building/DSC_0410", [180, 112, 325, 236], "entrance: pediment, columns, wooden door",
     ["lightglue_building/DSC_0411"], [], []),
    ("kermit/kermit005", [318, 166, 380, 280], "'Pocket Kanji Guide' book cover",
     [f"kermit/kermit{i:03d}" for i in (0, 1, 2, 3, 7, 8, 9, 10)], ["kermit/kermit006"], []),
    ("kermit/kermit004", [315, 62, 418, 190], "Kermit's head",
     [f"kermit/kermit{i:03d}" for i in (0, 1, 2, 3, 7, 8)], [f"kermit/kermit{i:03d}" for i in (6, 9, 10)], []),
    ("et_toy/et006", [92, 75, 228, 235], "E.T.'s head",
     ["et_toy/et005", "et_toy/et007"], [f"et_toy/et{i:03d}" for i in (0, 1, 2, 3, 4)], []),
    ("et_toy/et008", None, "whole photo, camera turned about 180 degrees",
     [], [f"et_toy/et{i:03d}" for i in (0, 1, 2, 3, 4, 5, 7)], []),
    (SC + "sacre_coeur1", [186, 20, 298, 135], "main dome with its lantern",
     [SC + n for n in ("02928139_3448003521", "17295357_9106075285", "44120379_8371960244",
                       "51091044_3486849416", "71295362_4051449754", "93341989_396310999")],
     [SC + "60584745_2207571072", SC + "sacre_coeur2"], [SC + "32809961_8274055477"]),
    (SC + "10265353_3838484249", None, "whole photo: close-up of the facade",
     [SC + n for n in ("03903474_1471484089", "32809961_8274055477", "60584745_2207571072")],
     [SC + n for n in ("02928139_3448003521", "17295357_9106075285", "44120379_8371960244",
                       "51091044_3486849416", "71295362_4051449754", "93341989_396310999", "sacre_coeur2")], []),
    ("lund_street/20", [272, 224, 456, 356], "the red Audi",
     ["lund_street/19", "lund_street/18"], ["lund_street/17"],
     [f"lund_street/{i:02d}" for i in range(7, 17) if i != 10]),   # a red dot far away; 10 is a query photo
    ("lund_street/10", [350, 12, 512, 230], "white corner house with the yellow tiled roof",
     ["lund_street/09", "lund_street/08"], ["lund_street/11", "lund_street/07"], ["lund_street/06"]),
    ("lund_street/29", [310, 80, 395, 172], "balcony on the brick house",
     ["lund_street/28"], ["lund_street/27"], ["lund_street/26", "lund_street/25"]),
]


def build() -> dict:
    qnames = ["images/" + q[0] for q in QUERIES]
    photos = sorted(p.relative_to(HERE).with_suffix("").as_posix() for p in (HERE / "images").glob("*/*.jpg"))
    distractors = sorted(p.relative_to(HERE).with_suffix("").as_posix() for p in (HERE / "distractors").glob("*.jpg"))
    imlist = [n for n in photos if n not in qnames] + distractors
    index = {n: i for i, n in enumerate(imlist)}
    gnd = []
    for _, box, _, easy, hard, junk in QUERIES:
        e, h, j = ({index["images/" + n] for n in names} for names in (easy, hard, junk))
        assert not (e & h or e & j or h & j), "an image has two labels"
        gnd.append({"easy": sorted(e), "hard": sorted(h), "junk": sorted(j), "bbx": box})
    return {"imlist": imlist, "qimlist": qnames, "gnd": gnd}


if __name__ == "__main__":
    out = HERE / "gnd-hard.json"
    out.write_text(json.dumps(build(), indent=1) + "\n")
    print(out)
