package com.example.sse;

import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatus;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;

import reactor.core.publisher.Mono;

/**
 * CORS headers on every response, errors included, and the preflight answer. Spring's own
 * CorsWebFilter answers 403 to a disallowed origin; here it just gets no CORS headers.
 */
@Component
public class Cors implements WebFilter {

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        ServerHttpRequest request = exchange.getRequest();
        ServerHttpResponse response = exchange.getResponse();
        HttpHeaders headers = response.getHeaders();
        headers.set(HttpHeaders.ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        String path = request.getPath().value();
        if (request.getMethod() == HttpMethod.OPTIONS
                && (path.equals(Routes.STREAM_PATH) || path.equals("/publish"))) {
            headers.set(HttpHeaders.ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS");
            headers.set(
                    HttpHeaders.ACCESS_CONTROL_ALLOW_HEADERS,
                    "Last-Event-ID, Cache-Control, Content-Type, Authorization");
            headers.set(HttpHeaders.ACCESS_CONTROL_MAX_AGE, "86400");
            response.setStatusCode(HttpStatus.NO_CONTENT);
            return response.setComplete();
        }
        return chain.filter(exchange);
    }
}
