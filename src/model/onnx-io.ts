/** Tensor names of the exported decoder graphs (see src/export/graphs.ts for their shapes). Pure: read by every backend. */
export const DECODER_INIT_IO = {
  inputs: { features: 'features' },
  outputs: { encoded: 'encoded', projected: 'projected', hidden: 'hidden' },
} as const;
export const DECODER_STEP_IO = {
  inputs: { token: 'token', hidden: 'hidden', encoded: 'encoded', projected: 'projected' },
  outputs: { logits: 'logits', attention: 'attention', hidden: 'hidden_out' },
} as const;
