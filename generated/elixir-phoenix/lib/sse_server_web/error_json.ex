defmodule SseServerWeb.ErrorJSON do
  @moduledoc "Renders what Phoenix catches (an exception in a controller) as {\"error\": \"...\"}."

  def render(template, _assigns) do
    %{error: Phoenix.Controller.status_message_from_template(template)}
  end
end
