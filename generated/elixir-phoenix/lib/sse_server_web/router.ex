defmodule SseServerWeb.Router do
  use Phoenix.Router, helpers: false

  # Routes match in order: a known path with another method falls through to 405, any other
  # path to 404 (both JSON, like every error here).
  scope "/", SseServerWeb do
    get "/events", StreamController, :stream
    options "/events", FallbackController, :preflight
    match :*, "/events", FallbackController, :stream_not_allowed

    post "/publish", PublishController, :publish
    options "/publish", FallbackController, :preflight
    match :*, "/publish", FallbackController, :publish_not_allowed

    get "/health", HealthController, :show
    match :*, "/health", FallbackController, :health_not_allowed

    match :*, "/*path", FallbackController, :not_found
  end
end
