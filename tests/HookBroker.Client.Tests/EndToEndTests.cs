using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;

namespace HookBroker.Client.Tests;

/// <summary>
/// The whole product with real processes: the broker, the web sample, the worker sample (the email sender) and a real
/// SMTP server. <c>POST /users</c> on the web app ends as a welcome email at the SMTP server.
/// </summary>
public sealed class EndToEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Post_users_on_the_web_sample_sends_the_welcome_email_through_the_worker_sample()
    {
        await using var smtp = await SmtpServer.StartAsync(Token);
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var brokerAddress = broker.GrpcAddress.ToString();

        await using var worker = SampleProcess.Start("worker sample", RepoPaths.WorkerSampleDll, new Dictionary<string, string>
        {
            ["HookBroker__Address"] = brokerAddress,
            ["HookBroker__Group"] = "email-sender",
            ["Smtp__Host"] = "127.0.0.1",
            ["Smtp__Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture),
            ["Smtp__From"] = "HookBroker <welcome@example.com>",
            ["Smtp__Security"] = "None",
        });
        var webPort = FreePorts.Reserve(1)[0];
        var web = new Uri($"http://127.0.0.1:{webPort}");
        await using var webApp = SampleProcess.Start(
            "web sample",
            RepoPaths.WebSampleDll,
            new Dictionary<string, string> { ["HookBroker__Client__Address"] = brokerAddress, ["HookBroker__Client__Source"] = "web-sample" },
            ["--urls", web.ToString()]);

        using var channel = broker.CreateChannel();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        await Poll.UntilAsync(
            async () =>
            {
                worker.ThrowIfExited();
                var groups = await admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token);
                return groups.Groups.Any(g => g.Name == "email-sender" && g.ConnectedWorkers > 0);
            },
            Wait,
            "the worker sample to subscribe group 'email-sender'",
            Token);

        using var http = new HttpClient { BaseAddress = web, Timeout = TimeSpan.FromSeconds(10) };
        await Poll.UntilAsync(
            async () =>
            {
                webApp.ThrowIfExited();
                try
                {
                    using var health = await http.GetAsync("/healthz", Token);
                    return health.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            Wait,
            "the web sample to answer /healthz",
            Token);

        using var response = await http.PostAsJsonAsync("/users", new { username = "ali", email = "ali@example.com" }, Token);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.Content.ReadFromJsonAsync<Created>(Token);
        Assert.False(string.IsNullOrEmpty(created?.EventId), "POST /users answers with the event id");
        try
        {
            await Poll.UntilAsync(() => smtp.Messages().Count > 0, Wait, "the welcome email to reach the SMTP server", Token);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nWorker output:\n{worker.LogTail}\nSMTP server output:\n{smtp.LogTail}", e);
        }

        var message = Assert.Single(smtp.Messages());
        Assert.Contains("X-RcptTo: ali@example.com", message, StringComparison.Ordinal);
        Assert.Contains("To: ali <ali@example.com>", message, StringComparison.Ordinal);
        Assert.Contains("Subject: Welcome, ali!", message, StringComparison.Ordinal);
        broker.AssertNoErrorsLogged();
    }

    private sealed record Created(string Username, string EventId);
}
