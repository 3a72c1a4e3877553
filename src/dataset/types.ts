/**
 * Every dataset source (Flickr8k, COCO, Karpathy JSON, a user's folder, synthetic shapes) is turned into
 * this one shape. Splits are always by image: an image and all its captions live in exactly one split.
 */
export type Split = 'train' | 'dev' | 'test';
export const SPLITS: readonly Split[] = ['train', 'dev', 'test'];

export interface DatasetImage {
  /** Stable id, unique within the dataset (file name for Flickr8k, numeric image id as a string for COCO). */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  /** Raw human captions (untokenised). */
  captions: string[];
  split: Split;
}

export interface Dataset {
  /** e.g. "flickr8k", "coco", "karpathy", "folder", "shapes" */
  kind: string;
  images: DatasetImage[];
  /** Captions that could not be used (e.g. they name an image that does not exist), with the reason. */
  skipped: { id: string; reason: string }[];
}
