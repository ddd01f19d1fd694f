"""Does a face or person detector pay for itself in the built-in model? (issue 11, step 3)

Measures OpenCV's Haar frontal-face cascade and HOG people detector (both ship their weights in
the opencv-python-headless wheel, Apache-2.0; not a Viewfinder dependency: install
``opencv-python-headless<5`` to run this, 5.x no longer ships the cascades) on coco_mini:
milliseconds per image (320 px, one thread), how well each separates photos whose captions
name a person from the others (ROC AUC), against the built-in model's own vectors (recipe 3,
each photo embedded out of fold, scored against "a man" / "a person"), and the person-caption
Recall@1/10 when a detection adds to the score of person queries.

    python bench/builtin_people_detectors.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def detect(paths: list[Path]) -> dict[str, np.ndarray]:
    """Per photo: Haar faces and HOG people found, and the ms each took."""
    import cv2

    cv2.setNumThreads(1)
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    face = cv2.CascadeClassifier(str(cascade))
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    faces, people, face_ms, hog_ms = [], [], [], []
    for path in paths:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        rgb.thumbnail((320, 320))
        a = np.ascontiguousarray(np.asarray(rgb).copy())
        grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        t0 = time.perf_counter()
        found = face.detectMultiScale(grey, 1.1, 5, minSize=(16, 16))
        face_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        rects, _ = hog.detectMultiScale(a, winStride=(8, 8), padding=(8, 8), scale=1.05)
        hog_ms.append(1000 * (time.perf_counter() - t0))
        faces.append(len(found))
        people.append(len(rects))
    return {
        "faces": np.array(faces),
        "people": np.array(people),
        "face_ms": np.array(face_ms),
        "hog_ms": np.array(hog_ms),
    }


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC, ties counted half."""
    pos, neg = score[positive], score[~positive]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main() -> None:
    from viewfinder.embedders.builtin import BuiltinEmbedder
    from viewfinder.embedders.builtin import train_projection as tp
    from viewfinder.evaluation import caption_subsets, rank_metrics

    tmp = Path(tempfile.gettempdir())
    emb = BuiltinEmbedder(tmp / "viewfinder-bench" / "builtin")
    cm = tp.extract(emb, DATA / "coco_mini", tmp / "viewfinder-train")
    tc = tp.extract(emb, DATA / "tiny_coco", tmp / "viewfinder-train")
    det = detect([DATA / "coco_mini" / "images" / name for name in cm.images])
    person_query = caption_subsets(cm.captions)["person"]
    person_photo = np.zeros(len(cm.images), bool)
    person_photo[cm.owner[person_query]] = True

    fold = tp.fold_ids(len(cm.images))
    gallery = np.zeros((len(cm.images), cm.queries.shape[1]), np.float32)
    for f in range(tp.FOLDS):
        projection = tp.fit([tp._train_part(cm, fold != f), tc])
        gallery[fold == f] = tp.vectors(emb, tp._subset(cm, fold == f), projection)
    conse = tp.vectors(emb, cm, None)
    result: dict[str, object] = {
        "photos": len(cm.images),
        "person_photos": int(person_photo.sum()),
        "haar_face_ms_median": float(np.median(det["face_ms"])),
        "hog_people_ms_median": float(np.median(det["hog_ms"])),
        "auc": {
            "haar_faces": auc(det["faces"].astype(float), person_photo),
            "hog_people": auc(det["people"].astype(float), person_photo),
        },
        "fires_on": {
            k: [float((det[k] > 0)[person_photo].mean()), float((det[k] > 0)[~person_photo].mean())]
            for k in ("faces", "people")
        },
    }
    for text in ("a man", "a person"):
        q = emb.embed_texts([text])[0]
        result["auc"][f"recipe3 '{text}'"] = auc(gallery @ q, person_photo)  # type: ignore[index]
        result["auc"][f"recipe2-like '{text}'"] = auc(conse @ q, person_photo)  # type: ignore[index]
    sims = cm.queries @ gallery.T
    detected = ((det["faces"] > 0) | (det["people"] > 0)).astype(float)
    gains = {}
    for g in (0.0, 0.02, 0.05, 0.1):
        s = sims + g * person_query[:, None] * detected[None, :]
        m = rank_metrics(s[person_query], cm.owner[person_query])
        gains[str(g)] = [m.recall_at_1, m.recall_at_10]
    result["person_captions_r1_r10_by_detection_bonus"] = gains
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "builtin_people_detectors.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
