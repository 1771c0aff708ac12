using HookBroker.Client;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;

namespace HookBroker.Worker.Sample;

/// <summary>The email sender's hooks. An exception nacks the event: the broker retries it with backoff.</summary>
internal sealed partial class WelcomeEmailHooks(IOptions<SmtpOptions> options, ILogger<WelcomeEmailHooks> logger)
{
    /// <summary>Sends the welcome email of a new user through SMTP.</summary>
    [HookEvent("user_created")]
    public async Task SendWelcomeAsync(string username, string email, HookContext context, CancellationToken cancellationToken)
    {
        var smtp = options.Value;
        using var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(smtp.From));
        // A bad address is a poison event: retrying cannot fix it, so the binding-style rejection is the honest outcome.
        if (!MailboxAddress.TryParse(email, out var recipient))
        {
            throw new HookBindingException("email", $"'{email}' is not an email address.", null);
        }

        message.To.Add(new MailboxAddress(username, recipient.Address));
        message.Subject = $"Welcome, {username}!";
        message.Body = new TextPart("plain") { Text = $"Hello {username},\n\nyour account is ready. Welcome aboard!\n" };

        using var client = new SmtpClient();
        await client.ConnectAsync(smtp.Host, smtp.Port, smtp.Security, cancellationToken);
        if (!string.IsNullOrEmpty(smtp.UserName))
        {
            await client.AuthenticateAsync(smtp.UserName, smtp.Password ?? string.Empty, cancellationToken);
        }

        await client.SendAsync(message, cancellationToken);
        await client.DisconnectAsync(quit: true, cancellationToken);
        LogSent(logger, recipient.Address, username, context.EventId, context.Attempt);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Sent the welcome email to {Email} ({Username}, event {EventId}, attempt {Attempt})")]
    private static partial void LogSent(ILogger logger, string email, string username, string? eventId, int attempt);
}
