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
}
