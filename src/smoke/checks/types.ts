import type { Context } from '../context.js';
import type { VariantName } from '../variants.js';

export type CheckId = `C${number}`;

export interface Check {
  id: CheckId;
  title: string;
  /** the rendered variants this check runs against, in this order */
  variants: VariantName[];
  /** returns a detail line for a pass; throws CheckFailed / CheckSkipped */
  run(ctx: Context): Promise<string>;
}
