using System.Net;
using HookBroker.BlackBox.Tests.Infrastructure;

namespace HookBroker.BlackBox.Tests;

/// <summary>The broker runs as its own process with production defaults and answers its health endpoint.</summary>
public sealed class BrokerProcessTests
{
    [Fact(Timeout = 60_000)]
    public async Task Broker_process_starts_and_healthz_answers_200()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = new BrokerProcess();

        await broker.StartAsync(cancellationToken);

        using var http = new HttpClient();
        using var response = await http.GetAsync(broker.HealthAddress, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 90_000)]
    public async Task SIGTERM_stops_the_broker_with_exit_code_0_and_it_restarts_on_the_same_ports_and_data()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = new BrokerProcess();
        await broker.StartAsync(cancellationToken);

        await broker.StopAsync(cancellationToken);

        Assert.Equal(0, broker.ExitCode);
        await broker.StartAsync(cancellationToken);
        Assert.True(broker.IsRunning);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 90_000)]
    public async Task A_second_broker_given_the_same_data_folder_refuses_to_start_and_the_first_serves_on()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var first = new BrokerProcess();
        await first.StartAsync(cancellationToken);
        await using var second = new BrokerProcess(new Dictionary<string, string> { ["DataPath"] = first.DataPath });

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => second.StartAsync(cancellationToken));

        Assert.Equal(4, second.ExitCode);
        Assert.Contains("hookbroker: cannot open storage", refused.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(first.DataPath, "hookbroker.db"), refused.Message, StringComparison.Ordinal);
        Assert.Contains("in use by another process", refused.Message, StringComparison.Ordinal);

        // The first broker still stores and answers.
        using var channel = first.CreateChannel();
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var raised = await client.RaiseAsync(new Protocol.V1.RaiseRequest { Event = "nobody_listens" }, cancellationToken: cancellationToken);
        Assert.Equal(0, raised.RoutedGroups);
        using var http = new HttpClient();
        using var health = await http.GetAsync(first.HealthAddress, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        first.AssertNoErrorsLogged();
    }
}
