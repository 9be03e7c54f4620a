/** What a viewer key may see: transcripts with identifiers masked, addresses partly hidden. */
import { redact } from "../../lib/redact";

/** Message text with every detected identifier replaced by a placeholder. */
export function viewerText(text: string): string {
  return redact(text).text;
}

/** `tel:+393331234567` → `tel:+39•••••••567`; e-mails keep the first letter and the domain. */
export function maskAddress(address: string): string {
  const [scheme, value = ""] = address.split(/:(.*)/s, 2);
  if (scheme === "email") {
    const [local = "", domain = ""] = value.split("@");
    return `email:${local.slice(0, 1)}•••@${domain}`;
  }
  if (value.length <= 6) return `${scheme}:${"•".repeat(value.length)}`;
  return `${scheme}:${value.slice(0, 3)}${"•".repeat(value.length - 6)}${value.slice(-3)}`;
}
