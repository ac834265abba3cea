/**
 * The typed openapi-fetch client every helper runs on.
 */
import type { Client } from "openapi-fetch";
import type { paths } from "./generated/api.ts";

/**
 * The openapi-fetch client typed by the OpenAPI document: `{ data, error, response }` per call.
 * @example const { data, error } = await client.raw.GET("/v1/jobs/{id}", { params: { path: { id } } });
 */
export type RawClient = Client<paths>;
