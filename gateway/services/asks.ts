/**
 * Asking a cluster's agent something on demand, and taking its answer. The asker waits (held, like
 * a long-poll) until the answer comes or the time is up; either way the ask is gone afterwards, so
 * an agent that answers late is told so and nothing is left behind.
 */
import { ANSWER_VALUE, type AgentAsk, type AskAnswer, type AskKind } from "../../schemas/asks.ts";
import type { Deps } from "../deps.ts";
import { newId } from "../ids.ts";
import { longPoll } from "../notifier.ts";
import { ApiProblem, validationProblem } from "../problem.ts";
import { answerAsk, dropAsk, heldAskKind, insertAsk, readAnswer } from "../store/asks.ts";
import type { z } from "@hono/zod-openapi";

type Question<K extends AskKind> = AgentAsk extends infer A ? (A extends { kind: K } ? Omit<A, "id"> : never) : never;
type ValueOf<K extends AskKind> = z.infer<(typeof ANSWER_VALUE)[K]>;

/** What came back: the agent's value, or why there is none (its refusal, or nobody answered in time). */
export type Asked<K extends AskKind> = { ok: true; value: ValueOf<K> } | { ok: false; reason: string; timedOut?: true };

const askTopic = (id: string) => `ask:${id}`;

/**
 * Puts `question` to an agent of `cluster` and waits up to `timeoutSeconds` for its answer.
 * @example await askAgent(deps, "alpha", { kind: "estimate", owner: "alice", spec }, 5)
 */
export async function askAgent<K extends AskKind>(
  deps: Deps,
  cluster: string,
  question: { kind: K } & Question<K>,
  timeoutSeconds: number,
  signal?: AbortSignal,
): Promise<Asked<K>> {
  const now = deps.now();
  const id = newId("ask", now);
  const { kind, owner, ...body } = question;
  await insertAsk(deps.db, { id, cluster, owner, kind, body, expiresAt: now + timeoutSeconds * 1000 }, now);
  deps.notifier.notify(`cluster:${cluster}`);
  try {
    const text = await longPoll(
      deps.notifier,
      askTopic(id),
      timeoutSeconds,
      () => readAnswer(deps.db, id).then((a) => a ?? undefined),
      {
        recheckMs: deps.recheckMs,
        now: deps.now,
        signal,
      },
    );
    if (text === undefined) {
      return { ok: false, reason: `no agent of ${cluster} answered within ${timeoutSeconds} s`, timedOut: true };
    }
    return JSON.parse(text) as Asked<K>;
  } finally {
    await dropAsk(deps.db, id);
  }
}

/**
 * Takes an agent's answer to an ask it holds. A value that is not what the kind promises is refused
 * (422, naming each field), so the asker only ever reads a well-formed answer.
 */
export async function takeAnswer(
  deps: Deps,
  agent: { cluster: string; agentId: string },
  id: string,
  answer: AskAnswer,
): Promise<void> {
  const kind = await heldAskKind(deps.db, { ...agent, id });
  if (kind === undefined) {
    throw new ApiProblem(
      "not_found",
      `ask ${id} is not waiting for this agent's answer (answered, expired or not yours)`,
    );
  }
  let stored: Asked<AskKind>;
  if (answer.ok) {
    const parsed = ANSWER_VALUE[kind].safeParse(answer.value);
    if (!parsed.success) {
      throw validationProblem(parsed.error, "body.value", ANSWER_VALUE[kind]);
    }
    stored = { ok: true, value: parsed.data };
  } else {
    stored = answer;
  }
  if (!(await answerAsk(deps.db, { ...agent, id, text: JSON.stringify(stored) }))) {
    throw new ApiProblem("not_found", `ask ${id} was answered or ended meanwhile`);
  }
  deps.notifier.notify(askTopic(id));
}
