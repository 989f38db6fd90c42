package com.example.sse;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.web.context.WebServerInitializedEvent;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.event.EventListener;
import org.springframework.core.env.Environment;

import java.security.SecureRandom;
import java.util.HexFormat;

/** A Server-Sent Events server on Spring Boot WebFlux (Reactor Netty). */
@SpringBootApplication
public class SseServerApplication {
    static final String SERVER_NAME =
            // the spec's name, on a line of its own so that any length is formatted alike
            "sse-server";

    private static final Logger log = LoggerFactory.getLogger(SseServerApplication.class);

    /** Tokens from the environment; streamToken is null when SSE_TOKEN is unset. */
    record Tokens(String streamToken, String publishToken) {}

    public static void main(String[] args) {
        SpringApplication app = new SpringApplication(SseServerApplication.class);
        // The JVM exits with 143 after SIGTERM; this hook stops Spring (ending every stream)
        // and then exits 0, as a clean stop should.
        app.setRegisterShutdownHook(false);
        ConfigurableApplicationContext context = app.run(args);
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    context.close();
                                    Runtime.getRuntime().halt(0);
                                },
                                "shutdown"));
    }

    @Bean
    Tokens tokens() {
        String publishToken = env("SSE_PUBLISH_TOKEN");
        if (publishToken == null) {
            byte[] random = new byte[16];
            new SecureRandom().nextBytes(random);
            publishToken = HexFormat.of().formatHex(random);
            log.info("publish token: {} (set SSE_PUBLISH_TOKEN to choose your own)", publishToken);
        }
        return new Tokens(env("SSE_TOKEN"), publishToken);
    }

    @EventListener
    void listening(WebServerInitializedEvent event) {
        Environment env = event.getApplicationContext().getEnvironment();
        log.info(
                "{} listening on http://{}:{}",
                SERVER_NAME,
                env.getProperty("server.address"),
                event.getWebServer().getPort());
    }

    /** An environment variable, null when unset or empty. */
    static String env(String name) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? null : value;
    }
}
