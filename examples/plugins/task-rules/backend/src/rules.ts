export const MAX_SUMMARY = 80

/** Why a summary breaks the house rules, or undefined when it is fine. */
export function checkSummary(summary: string | undefined): string | undefined {
  if (typeof summary !== 'string' || summary.trim() === '') return 'a task needs a summary'
  if (summary.length > MAX_SUMMARY) return `a task summary has at most ${MAX_SUMMARY} characters`
  return undefined
}
