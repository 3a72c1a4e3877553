/**
 * Training examples, packed. Every (image, caption) pair of a split is one row of a few typed arrays instead of
 * one JS object and one typed array per caption, so a split costs about 4 bytes per token and 8 per caption, plus
 * one id string per image (COCO's 616k captions: about 45 MB instead of 170 MB of JS objects). Rows keep the
 * order they were added in, so batches made from row indices do not change.
 *
 *   tokens(i)  = tokenData[offsets[i] .. offsets[i+1])   <start> w1 ... wn <end>
 *   image(i)   = imageIds[imageOf[i]]
 */

/** One example as a plain object: what tests and small tools build tables from. */
export interface Example {
  image: string; // image id in the feature store
  tokens: ArrayLike<number>; // <start> w1 ... wn <end>
}

export class ExampleTable {
  /** The packed arrays as the header describes them; ExampleTableBuilder and `from` make them. */
  constructor(
    private readonly imageIds: readonly string[],
    private readonly imageOf: Int32Array,
    private readonly offsets: Uint32Array,
    private readonly tokenData: Int32Array,
  ) {
    if (offsets.length !== imageOf.length + 1 || offsets[imageOf.length] !== tokenData.length)
      throw new Error(
        `ExampleTable: ${imageOf.length} rows need ${imageOf.length + 1} offsets ending at ${tokenData.length}.`,
      );
  }

  /** A table of these examples, in this order. */
  static from(examples: Iterable<Example>): ExampleTable {
    const builder = new ExampleTableBuilder();
    for (const e of examples) builder.add(e.image, e.tokens);
    return builder.build();
  }

  /** Number of examples (rows). */
  get length(): number {
    return this.imageOf.length;
  }

  /** Number of distinct images. */
  get imageCount(): number {
    return this.imageIds.length;
  }

  /** Image id of row i (the feature store's key). */
  image(i: number): string {
    return this.imageIds[this.imageOf[i]];
  }

  /** Dense index of row i's image: equal for rows of the same image, in [0, imageCount). */
  imageIndex(i: number): number {
    return this.imageOf[i];
  }

  /** Tokens of row i, <start> ... <end>: a view into the table, not a copy. */
  tokens(i: number): Int32Array {
    return this.tokenData.subarray(this.offsets[i], this.offsets[i + 1]);
  }

  /** Length of row i in tokens, <start> and <end> included. */
  tokenCount(i: number): number {
    return this.offsets[i + 1] - this.offsets[i];
  }

  /** Target tokens of row i: everything after <start>. */
  targetTokens(i: number): number {
    return this.tokenCount(i) - 1;
  }

  /** Target tokens of all rows. */
  totalTargetTokens(): number {
    return this.tokenData.length - this.length;
  }

  /** A new table of these rows, in this order. */
  select(rows: readonly number[]): ExampleTable {
    const builder = new ExampleTableBuilder();
    for (const i of rows) builder.add(this.image(i), this.tokens(i));
    return builder.build();
  }
}

/** Appends rows in amortised O(1); `build()` trims the arrays to size. */
export class ExampleTableBuilder {
  private readonly imageIds: string[] = [];
  private readonly imageIndex = new Map<string, number>();
  private imageOf = new Int32Array(1024);
  private offsets = new Uint32Array(1025);
  private tokenData = new Int32Array(16384);
  private rows = 0;

  add(image: string, tokens: ArrayLike<number>): void {
    let index = this.imageIndex.get(image);
    if (index === undefined) {
      index = this.imageIds.length;
      this.imageIds.push(image);
      this.imageIndex.set(image, index);
    }
    if (this.rows === this.imageOf.length) {
      this.imageOf = grow(this.imageOf, this.rows + 1);
      this.offsets = grow(this.offsets, this.rows + 2);
    }
    const start = this.offsets[this.rows];
    if (start + tokens.length > this.tokenData.length) this.tokenData = grow(this.tokenData, start + tokens.length);
    this.tokenData.set(tokens, start);
    this.imageOf[this.rows] = index;
    this.offsets[this.rows + 1] = start + tokens.length;
    this.rows++;
  }

  build(): ExampleTable {
    const end = this.offsets[this.rows];
    return new ExampleTable(
      this.imageIds.slice(),
      this.imageOf.slice(0, this.rows),
      this.offsets.slice(0, this.rows + 1),
      this.tokenData.slice(0, end),
    );
  }
}

function grow<T extends Int32Array | Uint32Array>(a: T, atLeast: number): T {
  const next = new (a.constructor as new (n: number) => T)(Math.max(atLeast, a.length * 2));
  next.set(a);
  return next;
}
