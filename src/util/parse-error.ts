import { UserError } from './errors.js';

/**
 * A file or message that does not follow its format (a zip, safetensors, .npy, TFLite or protobuf reader
 * refusing its input). A UserError, so the CLI prints the message without a stack trace; the message names
 * the file, what is wrong at which offset, and the fix. Readers throw this and nothing else for bad input:
 * the fuzz harness (fuzz/) treats any other exception as a bug in the reader.
 */
export class ParseError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'ParseError';
  }
}
