/** CSV encoding for exports (RFC 4180, with spreadsheet formula injection neutralised). Pure. */

/** One cell: quoted when needed; a leading `=`, `+`, `-`, `@`, tab or CR is prefixed with `'` so spreadsheets never run it. */
export function csvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CRLF-terminated row. */
export function csvRow(values: readonly (string | number | boolean | null | undefined)[]): string {
  return `${values.map(csvCell).join(",")}\r\n`;
}
