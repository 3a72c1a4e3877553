#!/usr/bin/env python3
"""Write test/fixtures/metrics/coco_metrics.json: caption-metric inputs and the scores that the
official coco-caption scorers (pycocoevalcap: Bleu, Rouge, Cider) give for them.

The TypeScript port in src/metrics/ is tested against this file (test/metrics-coco.test.ts), so the
numbers here must come from the official Python code, never from our port.

How the committed fixtures were generated
-----------------------------------------
pycocoevalcap is not installable on the build machine (no PyPI access), so its five pure-Python
scorer files were reconstructed verbatim from Python 3 versions in the public tylin/coco-caption
repository (the code the pip package salaniz/pycocoevalcap was made from; that repository itself was
not available to compare): pycocoevalcap/bleu/bleu.py @1336670, bleu/bleu_scorer.py @4b0b2ba,
rouge/rouge.py @bfd1596, cider/cider.py @70eeb53, cider/cider_scorer.py @bfd1596 (the version that
skips the division when a tf-idf norm is 0), laid out as a package OUTSIDE this repository:

    /tmp/pycocoevalcap/pycocoevalcap/{__init__.py, bleu/, rouge/, cider/}   (each with __init__.py)

and the script was run with numpy available:

    PYTHONPATH=/tmp/pycocoevalcap /usr/bin/python3 scripts/coco_metrics_fixtures.py

With `pip install pycocoevalcap` instead, just run `python3 scripts/coco_metrics_fixtures.py`.
The reconstructed files are not part of this repository.

Inputs are already PTB-tokenised strings (what pycocoevalcap's PTBTokenizer outputs), so the
fixtures test the metrics alone; the tokenizer has its own tests.
"""
import contextlib
import io
import json
import os
import random

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'metrics', 'coco_metrics.json')


def score(images):
    """images: list of (id, [refs], hyp). Returns the official corpus scores and per-image ROUGE/CIDEr."""
    gts = {img_id: list(refs) for img_id, refs, _ in images}
    res = {img_id: [hyp] for img_id, _, hyp in images}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    return {
        'scores': {'BLEU-1': bleu[0], 'BLEU-2': bleu[1], 'BLEU-3': bleu[2], 'BLEU-4': bleu[3],
                   'ROUGE-L': float(rouge), 'CIDEr': float(cider)},
        'rougePerImage': [float(x) for x in rouge_per_image],
        'ciderPerImage': [float(x) for x in cider_per_image],
    }


def case(name, images):
    out = {'name': name, 'images': [{'id': i, 'refs': r, 'hyp': h} for i, r, h in images]}
    out.update(score(images))
    return out


BASIC = [
    ('1', ['a man riding a horse on a beach', 'a person rides a horse near the ocean',
           'a man on a brown horse at the beach', 'someone riding a horse along the shore',
           'a horse and rider on the sand'], 'a man riding a horse on the beach'),
    ('2', ['two dogs playing in the grass', 'two dogs run through a grassy field',
           'a pair of dogs play outside', 'dogs are playing on the lawn',
           'two brown dogs playing together in a park'], 'two dogs play in a field'),
    ('3', ['a plate of food with broccoli and rice', 'a white plate topped with rice and vegetables',
           'a meal of chicken rice and broccoli', 'food on a plate on a table',
           'a dinner plate with rice and broccoli on it'], 'a plate of rice and broccoli'),
    ('4', ['a red double decker bus on a city street', 'a bus driving down the road',
           'a large red bus parked by the curb', 'a double decker bus in london',
           'a red bus with people on the sidewalk'], 'a red bus on the street'),
]

EDGES = [
    ('empty-hyp', ['a cat sleeping on a couch', 'a cat lying on a sofa'], ''),
    ('longer-than-refs', ['a dog', 'a brown dog'], 'a brown dog is running very fast across a large green field in the park'),
    ('single-ref', ['a woman holding an umbrella in the rain'], 'a woman with an umbrella'),
    ('repeated-words', ['a a a dog dog', 'the dog and the other dog'], 'dog dog dog dog dog a a'),
    ('no-overlap', ['a kitchen with a stove', 'an oven in a kitchen'], 'zebras graze savanna'),
    ('unicode', ['un café très chaud', 'une tasse de café', 'a cup of café au lait'], 'un café très chaud'),
    ('cjk', ['一 只 猫 在 床 上', '床 上 的 猫'], '一 只 猫'),
    ('tie-closest-length', ['one two three', 'one two three four five'], 'one two three four'),
    ('exact-match', ['a giraffe standing next to a tree', 'a tall giraffe near a tree'], 'a giraffe standing next to a tree'),
    ('parens-kept', ['a sign -lrb- red -rrb- on a pole', 'a red sign on a pole'], 'a -lrb- red -rrb- sign'),
]

WHITESPACE = [
    # Double spaces become empty tokens for ROUGE (split(" ")) but not for BLEU/CIDEr (split()).
    ('ws1', ['a dog on a  bed', 'a dog sleeping'], 'a  dog on a bed'),
    # U+00A0 inside a token (PTB fractions) is whitespace for Python's split() only.
    ('ws2', ['add 1\u00a01\\/2 cups of sugar', 'a cup of sugar'], 'add 1\u00a01\\/2 cups'),
    ('ws3', ['\ta cat', 'a cat on a mat '], 'a cat on a mat'),
    ('ws4', ['', 'a bird'], 'a bird'),
]

VOCAB = ('a an the man woman dog cat horse bus train plate of on in with near riding sitting standing '
         'red blue green white black large small two three street field table beach grass water').split()


def random_images(rng, count, prefix):
    images = []
    for i in range(count):
        refs = []
        for _ in range(rng.randint(1, 6)):
            refs.append(' '.join(rng.choice(VOCAB) for _ in range(rng.randint(1, 14))))
        if rng.random() < 0.5:  # hypothesis close to one reference: shared n-grams at all orders
            words = rng.choice(refs).split()
            words = [w if rng.random() < 0.75 else rng.choice(VOCAB) for w in words]
            words += [rng.choice(VOCAB) for _ in range(rng.randint(0, 3))]
        else:
            words = [rng.choice(VOCAB) for _ in range(rng.randint(0, 16))]
        images.append(('%s%d' % (prefix, i), refs, ' '.join(words)))
    return images


def main():
    rng = random.Random(20150210)
    cases = [
        case('basic', BASIC),
        case('edge-cases', EDGES),
        case('whitespace', WHITESPACE),
        case('one-image', [BASIC[0]]),
        case('all-empty-hyps', [(i, r, '') for i, r, _ in BASIC]),
        case('edge-single:empty-hyp', [EDGES[0]]),
        case('edge-single:no-overlap', [EDGES[4], BASIC[1]]),
        case('random-50', random_images(rng, 50, 'r')),
        case('random-400', random_images(rng, 400, 'img_')),
    ]
    for c in cases:
        s = c['scores']
        print('%-24s %4d images  BLEU-4 %.6f  ROUGE-L %.6f  CIDEr %.6f' % (c['name'], len(c['images']), s['BLEU-4'], s['ROUGE-L'], s['CIDEr']))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', encoding='utf-8') as f:
        json.dump({'generator': 'scripts/coco_metrics_fixtures.py', 'reference': 'pycocoevalcap (tylin/coco-caption, Python 3)',
                   'cases': cases}, f, ensure_ascii=False, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
