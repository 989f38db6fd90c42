import type { Context } from '../context.js';
import type { VariantName } from '../variants.js';

/** C1-C16 are the contract's; B1 is the browser check of `smoke --browser` */
export type CheckId = `C${number}` | `B${number}`;

export interface Check {
  id: CheckId;
  title: string;
  /** the rendered variants this check runs against, in this order */
  variants: VariantName[];
  /** returns a detail line for a pass; throws CheckFailed / CheckSkipped */
  run(ctx: Context): Promise<string>;
}
