// IPv6 addresses (full and compressed, optional dotted IPv4 tail), looked for around each ":".
import type { Candidate } from "./candidate";
import { PRIORITY } from "./candidate";
import { isHex, isWordChar } from "./chars";
import { ipv6Valid } from "./validators";

const IPV6_RE = /(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?![0-9A-Za-z:])/y;

/** `first`: text.indexOf(":"), when the caller already knows it. */
export function scanIpv6(text: string, out: Candidate[], first = text.indexOf(":")): void {
  let colon = first;
  const n = text.length;
  while (colon >= 0) {
    // Needs a second ":" within five characters ("2001:db8:", "fe80::").
    const second = text.indexOf(":", colon + 1);
    if (second < 0) return;
    if (second - colon > 5) {
      colon = second;
      continue;
    }
    let s = colon;
    while (s > 0 && s > colon - 4 && isHex(text.charCodeAt(s - 1))) s--;
    const before = s > 0 ? text.charCodeAt(s - 1) : 0;
    if (isWordChar(before) || before === 58 || before === 46) {
      colon = second;
      continue;
    }
    IPV6_RE.lastIndex = s;
    const m = IPV6_RE.exec(text);
    if (m !== null) {
      let value = m[0];
      let end = s + value.length;
      // "fe80::1." at a sentence end.
      if (value.endsWith(".")) {
        value = value.slice(0, -1);
        end--;
      }
      if (ipv6Valid(value)) {
        out.push({ type: "IP", start: s, end, key: value.toLowerCase(), priority: PRIORITY.IP });
        colon = end < n ? text.indexOf(":", end) : -1;
        continue;
      }
    }
    colon = second;
  }
}
