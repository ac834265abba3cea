import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { QuoteError, quoteArgs, shellQuote } from "../../agent/executor/quote.ts";

/** What bash makes of the quoted text: each argument printed NUL-terminated. */
function throughBash(args: string[]): string[] {
  const out = execFileSync("bash", ["-c", `printf '%s\\0' ${quoteArgs(args)}`], { encoding: "utf8" });
  return out.split("\0").slice(0, -1);
}

describe("shellQuote", () => {
  it.each([
    ["plain", "'plain'"],
    ["", "''"],
    ["with space", "'with space'"],
    ["it's", "'it'\\''s'"],
    ["'", "''\\'''"],
    ['"double"', "'\"double\"'"],
    ["$HOME", "'$HOME'"],
    ["$(id)", "'$(id)'"],
    ["`id`", "'`id`'"],
    ["a\\b", "'a\\b'"],
    ["*?[a]~!#;|&<>(){}", "'*?[a]~!#;|&<>(){}'"],
  ])("quotes %j as %s", (input, expected) => {
    expect(shellQuote(input)).toBe(expected);
  });

  it.each(["a\nb", "a\rb", "a\0b", "\n"])("refuses %j", (input) => {
    expect(() => shellQuote(input)).toThrow(QuoteError);
  });

  it("round-trips through bash byte for byte", () => {
    const args = [
      "",
      " ",
      "it's",
      "''",
      "$HOME",
      "$(id)",
      "`id`",
      "a\\b",
      "\t",
      "ü ß 日本 🎉",
      "--x=y",
      "-n",
      "*",
      "~",
      "!!",
    ];
    expect(throughBash(args)).toEqual(args);
  });
});

describe("quoteArgs", () => {
  it("joins quoted items with spaces", () => {
    expect(quoteArgs(["squeue", "-o", "%i|%T"])).toBe("'squeue' '-o' '%i|%T'");
  });
});
