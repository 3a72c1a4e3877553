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
