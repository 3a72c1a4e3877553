/**
 * An error meant for the person at the terminal: the CLI prints its message without a stack trace.
 * The message must name the bad input and say how to fix it.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
