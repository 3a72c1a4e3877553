/**
 * Child process of test/caption-many.test.ts: creates an onnxruntime-node session (through src/features/node-onnxruntime.ts,
 * as every command does) while its own command line is as long as `sat caption photos/*.jpg` with thousands of
 * files. Prints "session ok". Not a test file itself.
 */
import { createSession } from '../../src/encoders/onnx/runtime.js';
import { nodeOrt, nodeSessionOptions } from '../../src/features/node-onnxruntime.js';
import { poolEncoderOnnx } from './tiny-model.js';

const session = await createSession(nodeOrt, poolEncoderOnnx(), 'the pool encoder', nodeSessionOptions({ threads: 1 }));
await session.release();
console.log(`session ok (${process.argv.slice(2).join(' ').length} bytes of arguments)`);
