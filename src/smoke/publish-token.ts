/** The line a server started without SSE_PUBLISH_TOKEN logs once (contract v2, C9). */
export const PUBLISH_TOKEN_LINE = /publish token: (\S+) \(set SSE_PUBLISH_TOKEN to choose your own\)/;
