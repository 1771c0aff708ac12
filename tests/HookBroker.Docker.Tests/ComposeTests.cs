using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using HookBroker.BlackBox.Tests.Infrastructure;
using HookBroker.Docker.Tests.Infrastructure;

namespace HookBroker.Docker.Tests;

/// <summary>The user's `docker compose up`: the whole stack, driven from outside as a user would.</summary>
public sealed class ComposeTests
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan EmailTimeout = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 290_000)]
    public async Task A_user_created_through_the_web_sample_gets_a_welcome_email_in_the_mail_catcher()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var stack = await ComposeStack.CreateAsync(cancellationToken);
        var ports = FreePorts.Reserve(5);
        var (webPort, mailWebPort) = (ports[2], ports[3]);
        await stack.UpAsync(
            new Dictionary<string, string>
            {
                ["HOOKBROKER_GRPC_PORT"] = ComposeStack.Port(ports[0]),
                ["HOOKBROKER_HTTP_PORT"] = ComposeStack.Port(ports[1]),
                ["HOOKBROKER_WEB_PORT"] = ComposeStack.Port(webPort),
                ["MAILDEV_WEB_PORT"] = ComposeStack.Port(mailWebPort),
                ["MAILDEV_SMTP_PORT"] = ComposeStack.Port(ports[4]),
                ["HOOKBROKER_BASE_IMAGE"] = DockerEnvironment.BaseImage,
                ["HOOKBROKER_SDK_IMAGE"] = DockerEnvironment.SdkImage,
            },
            cancellationToken);

        // depends_on holds the worker and the web app until the broker (and the mail catcher) report healthy.
        var web = await stack.ContainerIdAsync("web", cancellationToken);
        var worker = await stack.ContainerIdAsync("worker", cancellationToken);
        var broker = await stack.ContainerIdAsync("broker", cancellationToken);
        await Poll.UntilAsync(
            async () => await ComposeStack.InspectAsync(web, "{{.State.Health.Status}}", cancellationToken) == "healthy"
                && await ComposeStack.InspectAsync(broker, "{{.State.Health.Status}}", cancellationToken) == "healthy"
                && await ComposeStack.InspectAsync(worker, "{{.State.Status}}", cancellationToken) == "running",
            ReadyTimeout,
            "the broker and the web app to be healthy and the worker running",
            cancellationToken);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var email = $"ali-{Guid.NewGuid().ToString("N")[..8]}@example.com";
        using var created = await http.PostAsJsonAsync(
            new Uri($"http://127.0.0.1:{webPort}/users"), new { username = "ali", email }, cancellationToken);
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"POST /users answered {created.StatusCode}: {await created.Content.ReadAsStringAsync(cancellationToken)}");

        // MailDev's REST API (3.x: under /api) lists every email it caught.
        var inbox = new Uri($"http://127.0.0.1:{mailWebPort}/api/email");
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    using var emails = JsonDocument.Parse(await http.GetStringAsync(inbox, cancellationToken));
                    return emails.RootElement.EnumerateArray().Any(e => e.GetProperty("to").EnumerateArray()
                        .Any(to => string.Equals(to.GetProperty("address").GetString(), email, StringComparison.OrdinalIgnoreCase)));
                },
                EmailTimeout,
                $"the welcome email to {email} in MailDev",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\n{await stack.LogsAsync()}");
        }
    }
}
