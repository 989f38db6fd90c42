export async function smokeCommand(_ids: string[], _opts: Record<string, unknown>): Promise<number> {
  console.error('smoke: not built yet');
  return 2;
}
