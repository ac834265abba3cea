/**
 * The SSRF rule for webhook targets, in one place: checked on the URL at registration (a literal
 * address or a `localhost` name) and on every address a name resolves to at delivery time. The
 * WHATWG URL parser already turns numeric tricks (`2130706433`, `0x7f.1`, `127.1`) into dotted
 * IPv4 and IPv6 into its compressed form, so the checks below see one spelling of each address.
 */

/** Why `address` (an IP literal) may not be a webhook target, or undefined when it is public. */
export function addressFault(address: string): string | undefined {
  const v4 = parseIPv4(address);
  if (v4) {
    return ipv4Fault(v4);
  }
  const v6 = parseIPv6(address.replace(/^\[|\]$/g, ""));
  return v6 ? ipv6Fault(v6) : `'${address}' is not an IP address`;
}

const V4_RULES: [number[], number, string][] = [
  [[0, 0, 0, 0], 8, "an unspecified address (0.0.0.0/8)"],
  [[10, 0, 0, 0], 8, "a private address (10.0.0.0/8)"],
  [[100, 64, 0, 0], 10, "a carrier-grade NAT address (100.64.0.0/10)"],
  [[127, 0, 0, 0], 8, "a loopback address (127.0.0.0/8)"],
  [[169, 254, 0, 0], 16, "a link-local address (169.254.0.0/16, cloud metadata)"],
  [[172, 16, 0, 0], 12, "a private address (172.16.0.0/12)"],
  [[192, 0, 0, 0], 24, "an IETF protocol address (192.0.0.0/24)"],
  [[192, 168, 0, 0], 16, "a private address (192.168.0.0/16)"],
  [[198, 18, 0, 0], 15, "a benchmarking address (198.18.0.0/15)"],
  [[224, 0, 0, 0], 4, "a multicast address (224.0.0.0/4)"],
  [[240, 0, 0, 0], 4, "a reserved or broadcast address (240.0.0.0/4)"],
];

function ipv4Fault(bytes: number[]): string | undefined {
  const value = toUint32(bytes);
  for (const [base, bits, what] of V4_RULES) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if ((value & mask) >>> 0 === (toUint32(base) & mask) >>> 0) {
      return what;
    }
  }
  return undefined;
}

function ipv6Fault(words: number[]): string | undefined {
  const [w0 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0, w5 = 0, w6 = 0, w7 = 0] = words;
  const embedded = [w6 >> 8, w6 & 0xff, w7 >> 8, w7 & 0xff];
  if (w0 === 0 && w1 === 0 && w2 === 0 && w3 === 0 && w4 === 0) {
    if (w5 === 0 && w6 === 0 && (w7 === 0 || w7 === 1)) {
      return w7 === 0 ? "an unspecified address (::)" : "a loopback address (::1)";
    }
    if (w5 === 0xffff || w5 === 0) {
      // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d) forms.
      const fault = ipv4Fault(embedded);
      return fault ? `an IPv4-mapped form of ${fault}` : undefined;
    }
  }
  if (w0 === 0x64 && w1 === 0xff9b && w2 === 0 && w3 === 0 && w4 === 0 && w5 === 0) {
    const fault = ipv4Fault(embedded);
    return fault ? `a NAT64 form of ${fault}` : undefined;
  }
  if ((w0 & 0xfe00) === 0xfc00) {
    return "a unique local address (fc00::/7)";
  }
  if ((w0 & 0xffc0) === 0xfe80) {
    return "a link-local address (fe80::/10)";
  }
  if ((w0 & 0xff00) === 0xff00) {
    return "a multicast address (ff00::/8)";
  }
  return undefined;
}

const toUint32 = (b: number[]) => (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;

function parseIPv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return undefined;
  }
  return parts.map(Number);
}

/** Eight 16-bit words, or undefined; accepts `::` and a dotted IPv4 tail. */
function parseIPv6(text: string): number[] | undefined {
  const zone = text.indexOf("%");
  const bare = zone >= 0 ? text.slice(0, zone) : text;
  if (!/^[0-9a-fA-F:.]+$/.test(bare) || !bare.includes(":")) {
    return undefined;
  }
  const halves = bare.split("::");
  if (halves.length > 2) {
    return undefined;
  }
  const words = (half: string) => {
    if (half === "") {
      return [];
    }
    const out: number[] = [];
    for (const group of half.split(":")) {
      const v4 = group.includes(".") ? parseIPv4(group) : undefined;
      if (v4) {
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(group)) {
        out.push(Number.parseInt(group, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = words(halves[0] ?? "");
  const tail = halves.length === 2 ? words(halves[1] ?? "") : [];
  if (!head || !tail) {
    return undefined;
  }
  if (halves.length === 1) {
    return head.length === 8 ? head : undefined;
  }
  const fill = 8 - head.length - tail.length;
  return fill < 1 ? undefined : [...head, ...new Array<number>(fill).fill(0), ...tail];
}

/** Whether `hostname` (as URL.hostname gives it) is an IP literal rather than a name. */
export function isIpLiteral(hostname: string): boolean {
  return parseIPv4(hostname) !== undefined || (hostname.startsWith("[") && hostname.endsWith("]"));
}

/**
 * Why `raw` may not be a webhook URL, or undefined. Without `allowPrivate`: https only, and no
 * literal private address or `localhost` name. Names are checked again after resolution.
 */
export function urlFault(raw: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not an absolute URL";
  }
  if (url.protocol !== "https:" && !(allowPrivate && url.protocol === "http:")) {
    return allowPrivate
      ? "only https:// or http:// URLs"
      : "only https:// URLs (http:// needs the admin's allowPrivate)";
  }
  if (url.username !== "" || url.password !== "") {
    return "credentials in the URL are refused; authenticate with the signature";
  }
  if (allowPrivate) {
    return undefined;
  }
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || host.endsWith(".localhost")) {
    return `'${url.hostname}' is a loopback name; private and loopback targets need an admin's allowPrivate`;
  }
  if (isIpLiteral(host)) {
    const fault = addressFault(host);
    return fault ? `${host} is ${fault}; private and loopback targets need an admin's allowPrivate` : undefined;
  }
  return undefined;
}
