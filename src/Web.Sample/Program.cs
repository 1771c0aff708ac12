using HookBroker.Client;

// The web-app side of `user_created`, like Backendpy's `await request.app.execute_event('user_created', {...})`.
// Settings come from appsettings.json and environment variables (HookBroker__Client__Address, ...); `--urls` sets where
// it listens (default http://127.0.0.1:5080).
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddHookBroker(o => builder.Configuration.GetSection("HookBroker").Bind(o));

var app = builder.Build();
app.UseHookBroker();

app.MapPost("/users", async (NewUser user, IHookBrokerClient client, CancellationToken cancellationToken) =>
{
    if (string.IsNullOrWhiteSpace(user.Username) || string.IsNullOrWhiteSpace(user.Email))
    {
        return Results.ValidationProblem(new Dictionary<string, string[]> { ["user"] = ["username and email are required."] });
    }

    // Returns once the broker has durably stored the event; the email-sender group's worker sends the email.
    var raised = await client.ExecuteEventAsync("user_created", new { username = user.Username, email = user.Email }, cancellationToken: cancellationToken);
    return Results.Created($"/users/{Uri.EscapeDataString(user.Username)}", new UserCreated(user.Username, raised.EventId));
});

app.MapGet("/healthz", () => Results.Ok("ok"));

await app.RunAsync();

internal sealed record NewUser(string? Username, string? Email);

internal sealed record UserCreated(string Username, string EventId);
