/**
 * The feature store contract (writer: `sat features`; reader: the trainer and evaluator).
 * Features are [locations, channels] per image, stored as fp16 in a few large shard files with an index,
 * read on demand so RAM does not grow with the dataset size.
 */
export interface FeatureStoreReader {
  readonly locations: number;
  readonly channels: number;
  readonly encoderId: string;
  /** Image ids present in the store. */
  ids(): string[];
  has(id: string): boolean;
  /** Read one image's features as float32 [locations * channels] into `out` (allocated if absent). */
  read(id: string, out?: Float32Array, offset?: number): Float32Array;
  close(): void;
}

/**
 * The store key of an image's features computed on the image mirrored left to right (`sat features --mirror`),
 * which training reads in place of the image's own with `--mirror-probability`: a second view of every training
 * image. `sat features --mirror` refuses a run whose own ids already end this way.
 */
export const mirroredId = (id: string): string => `${id}#mirrored`;
